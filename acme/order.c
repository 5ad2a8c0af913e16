/* The ACME exchange for one certificate (RFC 8555 7.1-7.5). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "acme/https.h"
#include "acme/json.h"
#include "acme/jws.h"
#include "acme/order.h"
#include "relay/challenge.h"
#include "relay/log.h"

#define TIMEOUT		15	/* seconds for each request, all told */
#define POLLS		60	/* status polls, a second apart */
#define URL_MAX		1024

struct session {
	const struct order_params *p;
	char	 new_nonce[URL_MAX], new_account[URL_MAX], new_order[URL_MAX];
	char	 nonce[256];
	char	 kid[URL_MAX];		/* the account's URL */
	char	*err;
	size_t	 errlen;
};

/* The reply's problem detail (RFC 8555 6.7) as the error. */
static void
problem(struct session *s, const char *what, struct https_reply *rep)
{
	struct json_span	doc;
	char			detail[400] = "", type[128] = "";

	if (json_parse(rep->body, rep->len, &doc) == 0) {
		(void)json_member_str(&doc, "detail", detail, sizeof(detail));
		(void)json_member_str(&doc, "type", type, sizeof(type));
	}
	snprintf(s->err, s->errlen, "%s: HTTP %d%s%s%s%s", what, rep->status,
	    *type ? " " : "", type, *detail ? ": " : "", detail);
}

static int
get(struct session *s, const char *method, const char *url,
    struct https_reply *rep)
{
	return https_request(s->p->tls, method, url, NULL, TIMEOUT,
	    s->p->stop, rep, s->err, s->errlen);
}

static int
fresh_nonce(struct session *s)
{
	struct https_reply	rep;

	if (get(s, "HEAD", s->new_nonce, &rep) == -1)
		return -1;
	snprintf(s->nonce, sizeof(s->nonce), "%s", rep.nonce);
	https_reply_free(&rep);
	if (s->nonce[0] == '\0') {
		snprintf(s->err, s->errlen, "newNonce: no Replay-Nonce");
		return -1;
	}
	return 0;
}

/* A signed POST; a badNonce refusal is tried once more (RFC 8555 6.5).
 * Returns 0 with a 2xx reply, else -1 with err. */
static int
post(struct session *s, const char *what, const char *url,
    const char *payload, struct https_reply *rep)
{
	char	*body;
	int	 tries, rc;

	for (tries = 0; tries < 2; tries++) {
		if ((s->nonce[0] == '\0' && fresh_nonce(s) == -1) ||
		    (body = jws_sign(s->p->account, s->kid[0] ? s->kid : NULL,
		    s->nonce, url, payload)) == NULL)
			return -1;
		s->nonce[0] = '\0';
		rc = https_request(s->p->tls, "POST", url, body, TIMEOUT,
		    s->p->stop, rep, s->err, s->errlen);
		free(body);
		if (rc == -1)
			return -1;
		snprintf(s->nonce, sizeof(s->nonce), "%s", rep->nonce);
		if (rep->status >= 200 && rep->status < 300)
			return 0;
		problem(s, what, rep);
		https_reply_free(rep);
		if (strstr(s->err, "badNonce") == NULL)
			return -1;
	}
	return -1;
}

/* A 2xx reply's body as JSON into doc (rep->body must outlive it). */
static int
reply_json(struct session *s, const char *what, struct https_reply *rep,
    struct json_span *doc)
{
	if (json_parse(rep->body, rep->len, doc) == -1) {
		snprintf(s->err, s->errlen, "%s: not JSON", what);
		return -1;
	}
	return 0;
}

static int
directory(struct session *s)
{
	struct https_reply	rep;
	struct json_span	doc;
	int			rc = -1;

	if (get(s, "GET", s->p->directory, &rep) == -1)
		return -1;
	if (rep.status != 200)
		problem(s, "directory", &rep);
	else if (reply_json(s, "directory", &rep, &doc) == 0 &&
	    (json_member_str(&doc, "newNonce", s->new_nonce, URL_MAX) == -1 ||
	    json_member_str(&doc, "newAccount", s->new_account, URL_MAX) == -1 ||
	    json_member_str(&doc, "newOrder", s->new_order, URL_MAX) == -1))
		snprintf(s->err, s->errlen, "directory: no newNonce, newAccount "
		    "or newOrder");
	else if (rep.status == 200)
		rc = 0;
	https_reply_free(&rep);
	return rc;
}

/* Finds the account of our key, or makes it: its URL is then the kid. */
static int
account(struct session *s)
{
	struct https_reply	rep;
	char			payload[512];

	if (s->p->email != NULL)
		snprintf(payload, sizeof(payload), "{\"termsOfServiceAgreed\":"
		    "true,\"contact\":[\"mailto:%s\"]}", s->p->email);
	else
		snprintf(payload, sizeof(payload),
		    "{\"termsOfServiceAgreed\":true}");
	if (post(s, "newAccount", s->new_account, payload, &rep) == -1)
		return -1;
	snprintf(s->kid, sizeof(s->kid), "%s", rep.location);
	https_reply_free(&rep);
	if (s->kid[0] == '\0') {
		snprintf(s->err, s->errlen, "newAccount: no account URL");
		return -1;
	}
	return 0;
}

/* Whether word is one of the space-separated words of list. */
static int
one_of(const char *list, const char *word)
{
	size_t	n = strlen(word);

	while (n > 0 && *list != '\0') {
		if (strncmp(list, word, n) == 0 && (list[n] == ' ' ||
		    list[n] == '\0'))
			return 1;
		list += strcspn(list, " ");
		list += strspn(list, " ");
	}
	return 0;
}

/* Polls url until its status is one of want (space-separated, e.g.
 * "valid invalid"): 0 with the reply (caller frees), or -1. */
static int
poll_status(struct session *s, const char *what, const char *url,
    const char *want, struct https_reply *rep, char *status, size_t len)
{
	struct json_span	doc;
	int			i;

	for (i = 0; i < POLLS; i++) {
		if (post(s, what, url, "", rep) == -1)
			return -1;
		if (reply_json(s, what, rep, &doc) == -1 ||
		    json_member_str(&doc, "status", status, len) == -1) {
			https_reply_free(rep);
			snprintf(s->err, s->errlen, "%s: no status", what);
			return -1;
		}
		if (one_of(want, status))
			return 0;
		https_reply_free(rep);
		if (https_stop_wait(s->p->stop, 1000)) {
			snprintf(s->err, s->errlen, "stopped");
			return -1;
		}
	}
	snprintf(s->err, s->errlen, "%s: still %s after %d s", what, status,
	    POLLS);
	return -1;
}

/* The http-01 challenge of an authorization: its url and token. */
static int
http01(const struct json_span *authz, char *url, char *token)
{
	struct json_span	chals, ch;
	char			type[32];
	size_t			i;

	if (json_member(authz, "challenges", &chals) == -1)
		return -1;
	for (i = 0; json_element(&chals, i, &ch) == 0; i++)
		if (json_member_str(&ch, "type", type, sizeof(type)) == 0 &&
		    strcmp(type, "http-01") == 0)
			return json_member_str(&ch, "url", url, URL_MAX) == -1 ||
			    json_member_str(&ch, "token", token, 256) == -1 ?
			    -1 : 0;
	return -1;
}

/* Publishes the token, tells the server to look, waits for its verdict. */
static int
validate(struct session *s, const char *authz_url, const char *url,
    const char *token)
{
	struct https_reply	rep;
	char			thumb[64], keyauth[400], status[32];
	int			rc = -1;

	if (jwk_thumbprint(s->p->account, thumb, sizeof(thumb)) == -1 ||
	    snprintf(keyauth, sizeof(keyauth), "%s.%s", token, thumb) >=
	    (int)sizeof(keyauth) || challenge_add(token, keyauth) == -1) {
		snprintf(s->err, s->errlen, "out of memory");
		return -1;
	}
	if (post(s, "challenge", url, "{}", &rep) == 0) {
		https_reply_free(&rep);
		if (poll_status(s, "authorization", authz_url, "valid invalid",
		    &rep, status, sizeof(status)) == 0) {
			if (strcmp(status, "valid") == 0)
				rc = 0;
			else
				problem(s, "authorization invalid", &rep);
			https_reply_free(&rep);
		}
	}
	challenge_remove(token);
	return rc;
}

static int
authorize(struct session *s, const char *authz_url)
{
	struct https_reply	rep;
	struct json_span	doc;
	char			status[32], url[URL_MAX], token[256];
	int			rc = -1;

	if (post(s, "authorization", authz_url, "", &rep) == -1)
		return -1;
	if (reply_json(s, "authorization", &rep, &doc) == 0 &&
	    json_member_str(&doc, "status", status, sizeof(status)) == 0) {
		if (strcmp(status, "valid") == 0)
			rc = 0;
		else if (http01(&doc, url, token) == -1)
			snprintf(s->err, s->errlen, "authorization: no "
			    "http-01 challenge");
		else
			rc = 1;
	}
	https_reply_free(&rep);
	return rc == 1 ? validate(s, authz_url, url, token) : rc;
}

/* newOrder: its URL, finalize URL and authorizations (in *rep). */
static int
new_order(struct session *s, struct https_reply *rep, char *order_url,
    struct json_span *doc)
{
	char	payload[8192];
	size_t	i, off;

	off = (size_t)snprintf(payload, sizeof(payload), "{\"identifiers\":[");
	for (i = 0; i < s->p->nnames && off < sizeof(payload); i++)
		off += (size_t)snprintf(payload + off, sizeof(payload) - off,
		    "%s{\"type\":\"dns\",\"value\":\"%s\"}", i ? "," : "",
		    s->p->names[i]);
	if (off >= sizeof(payload) - 3) {
		snprintf(s->err, s->errlen, "too many names");
		return -1;
	}
	strcat(payload, "]}");
	if (post(s, "newOrder", s->new_order, payload, rep) == -1)
		return -1;
	snprintf(order_url, URL_MAX, "%s", rep->location);
	if (reply_json(s, "newOrder", rep, doc) == -1 || !*order_url) {
		https_reply_free(rep);
		if (!*order_url)
			snprintf(s->err, s->errlen, "newOrder: no order URL");
		return -1;
	}
	return 0;
}

static int
authorize_all(struct session *s, const struct json_span *order)
{
	struct json_span	list, a;
	char			url[URL_MAX];
	size_t			i;

	if (json_member(order, "authorizations", &list) == -1) {
		snprintf(s->err, s->errlen, "order: no authorizations");
		return -1;
	}
	for (i = 0; json_element(&list, i, &a) == 0; i++)
		if (json_str(&a, url, sizeof(url)) == -1 ||
		    authorize(s, url) == -1)
			return -1;
	return 0;
}

/* finalize with a CSR of a new key, wait, download the chain. */
static int
finalize(struct session *s, const char *finalize_url, const char *order_url,
    EVP_PKEY *key, char **chain)
{
	struct https_reply	rep;
	struct json_span	doc;
	char			*csr, *payload = NULL, status[32], url[URL_MAX];
	int			rc = -1;

	if ((csr = csr_new(key, s->p->names, s->p->nnames, s->err,
	    s->errlen)) == NULL)
		return -1;
	if (asprintf(&payload, "{\"csr\":\"%s\"}", csr) == -1)
		payload = NULL;
	free(csr);
	if (payload == NULL || post(s, "finalize", finalize_url, payload,
	    &rep) == -1) {
		free(payload);
		return -1;
	}
	free(payload);
	https_reply_free(&rep);
	if (poll_status(s, "order", order_url, "valid invalid", &rep, status,
	    sizeof(status)) == -1)
		return -1;
	if (strcmp(status, "valid") != 0)
		problem(s, "order invalid", &rep);
	else if (reply_json(s, "order", &rep, &doc) == 0 &&
	    json_member_str(&doc, "certificate", url, sizeof(url)) == 0)
		rc = 0;
	https_reply_free(&rep);
	if (rc == -1 || post(s, "certificate", url, "", &rep) == -1)
		return -1;
	*chain = rep.body;		/* taken over */
	return 0;
}

int
order_certificate(const struct order_params *p, char **chain,
    EVP_PKEY **key, char *err, size_t errlen)
{
	struct session		s = { .p = p, .err = err, .errlen = errlen };
	struct https_reply	rep;
	struct json_span	doc;
	char			order_url[URL_MAX], fin[URL_MAX];
	int			rc = -1;

	*chain = NULL;
	if (directory(&s) == -1 || account(&s) == -1 ||
	    new_order(&s, &rep, order_url, &doc) == -1)
		return -1;
	if (json_member_str(&doc, "finalize", fin, sizeof(fin)) == -1)
		snprintf(err, errlen, "newOrder: no finalize URL");
	else if (authorize_all(&s, &doc) == 0)
		rc = 0;
	https_reply_free(&rep);
	if (rc == -1)
		return -1;
	if ((*key = key_new()) == NULL) {
		snprintf(err, errlen, "cannot make a key");
		return -1;
	}
	if (finalize(&s, fin, order_url, *key, chain) == -1) {
		EVP_PKEY_free(*key);
		*key = NULL;
		return -1;
	}
	return 0;
}
