/*
 * The Host of an HTTP/1.x request head (RFC 9112 3 and 3.2), read from the
 * first bytes of a connection without consuming them. Only what routing
 * needs is checked: a request line that ends in HTTP/1.x, header lines
 * up to the blank one, one Host at most.
 */
#include <ctype.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>

#include "relay/peek.h"

static enum peek_status
fail(char *err, size_t errlen, const char *why)
{
	snprintf(err, errlen, "%s", why);
	return PEEK_ERROR;
}

/* The end of the line at p (its LF), or NULL if it has not arrived. */
static const char *
line_end(const char *p, const char *end)
{
	return memchr(p, '\n', (size_t)(end - p));
}

/* A request line: METHOD SP TARGET SP HTTP/1.x, CR optional. */
static int
request_line(const char *p, const char *eol)
{
	const char	*sp1, *sp2;

	if (eol > p && eol[-1] == '\r')
		eol--;
	if ((sp1 = memchr(p, ' ', (size_t)(eol - p))) == NULL || sp1 == p ||
	    (sp2 = memchr(sp1 + 1, ' ', (size_t)(eol - sp1 - 1))) == NULL ||
	    sp2 == sp1 + 1)
		return -1;
	for (; p < sp1; p++)
		if (!isupper((unsigned char)*p))
			return -1;
	return eol - sp2 - 1 == 8 && memcmp(sp2 + 1, "HTTP/1.", 7) == 0 &&
	    (sp2[8] == '0' || sp2[8] == '1') ? 0 : -1;
}

/* A Host value's name: port and trailing dot dropped, lowercased. */
static int
host_name(const char *v, const char *end, char *name, size_t namelen)
{
	const char	*stop = end, *c;
	size_t		 n, i;

	if (v < end && *v == '[') {
		if ((stop = memchr(v, ']', (size_t)(end - v))) == NULL)
			return -1;
		stop++;
	} else if ((c = memchr(v, ':', (size_t)(end - v))) != NULL)
		stop = c;
	if (stop < end && *stop == ':')
		for (c = stop + 1; c < end; c++)
			if (!isdigit((unsigned char)*c))
				return -1;
	if (stop != end && *stop != ':')
		return -1;
	if (stop > v && *v != '[' && stop[-1] == '.')
		stop--;
	if ((n = (size_t)(stop - v)) >= namelen || n >= PEEK_NAME_MAX)
		return -1;
	for (i = 0; i < n; i++) {
		/* strchr finds the terminator too: a NUL is no host byte. */
		if (!isalnum((unsigned char)v[i]) && (v[i] == '\0' ||
		    strchr("-._[]:", v[i]) == NULL))
			return -1;
		name[i] = (char)tolower((unsigned char)v[i]);
	}
	name[n] = '\0';
	return 0;
}

/* One header line: the Host's name into name when it is one. Returns 1
 * for a Host, 0 for another header, -1 if malformed. */
static int
header(const char *p, const char *eol, char *name, size_t namelen)
{
	const char	*colon, *v, *end = eol;

	if (end > p && end[-1] == '\r')
		end--;
	if ((colon = memchr(p, ':', (size_t)(end - p))) == NULL || colon == p)
		return -1;
	if (colon - p != 4 || strncasecmp(p, "host", 4) != 0)
		return 0;
	for (v = colon + 1; v < end && (*v == ' ' || *v == '\t'); v++)
		;
	while (end > v && (end[-1] == ' ' || end[-1] == '\t'))
		end--;
	return host_name(v, end, name, namelen) == -1 ? -1 : 1;
}

enum peek_status
peek_http_host(const void *buf, size_t len, char *name, size_t namelen,
    char *err, size_t errlen)
{
	const char	*p = buf, *end = p + (len < PEEK_MAX ? len : PEEK_MAX);
	const char	*eol;
	int		 hosts = 0, rc;

	*name = '\0';
	if ((eol = line_end(p, end)) == NULL)
		goto more;
	if (request_line(p, eol) == -1)
		return fail(err, errlen, "not an HTTP/1.x request");
	for (p = eol + 1; (eol = line_end(p, end)) != NULL; p = eol + 1) {
		if (eol == p || (eol == p + 1 && *p == '\r'))
			return PEEK_DONE;		/* the blank line */
		if (*p == ' ' || *p == '\t')
			return fail(err, errlen, "folded header line");
		if ((rc = header(p, eol, name, namelen)) == -1)
			return fail(err, errlen, "malformed header line");
		if (rc == 1 && hosts++ > 0)
			return fail(err, errlen, "more than one Host header");
	}
more:
	if (len >= PEEK_MAX)
		return fail(err, errlen, "request head larger than 64 KiB");
	*name = '\0';
	return PEEK_NEED_MORE;
}

int
peek_http_target(const void *buf, size_t len, char *target, size_t tlen)
{
	const char	*p = buf, *end = p + len, *eol, *sp1, *sp2;

	if ((eol = line_end(p, end)) == NULL || request_line(p, eol) == -1)
		return -1;
	sp1 = memchr(p, ' ', (size_t)(eol - p));
	sp2 = memchr(sp1 + 1, ' ', (size_t)(eol - sp1 - 1));
	if ((size_t)(sp2 - sp1 - 1) >= tlen)
		return -1;
	memcpy(target, sp1 + 1, (size_t)(sp2 - sp1 - 1));
	target[sp2 - sp1 - 1] = '\0';
	return 0;
}
