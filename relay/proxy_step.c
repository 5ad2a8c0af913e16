/*
 * --accept-proxy (and a tunnel's --strip-proxy-header): the PROXY header
 * is read before the target is opened. A read may take bytes beyond the
 * header (a client speaks as soon as it connected); they go to the target
 * first, ahead of the pump, so none are lost and none read twice.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "relay/endpoint.h"
#include "relay/proxy.h"
#include "relay/proxy_step.h"

struct proxy_read {
	size_t	have;
	uint8_t	buf[PROXY_V2_MAX];	/* the longest header accepted */
};

static void *
step_start(struct conn *c)
{
	return calloc(1, sizeof(struct proxy_read));
}

static void
step_free(void *state)
{
	free(state);
}

/* A whole header: its address replaces the socket's, then the target. */
static void
step_finish(struct conn *c, struct proxy_read *p, const struct proxy_hdr *h,
    size_t used)
{
	if (h->has_addr)
		conn_set_origin(c, (const struct sockaddr *)&h->src, h->srclen,
		    (const struct sockaddr *)&h->dst, h->dstlen);
	if (conn_push_target(c, p->buf + used, p->have - used) == -1) {
		conn_close(c, "out of memory");
		return;
	}
	conn_step_done(c);
}

static void
step_ready(struct conn *c, void *state, int what)
{
	struct proxy_read	*p = state;
	struct endpoint		*client = conn_client(c);
	struct proxy_hdr	 h;
	ssize_t			 n;
	size_t			 used;
	char			 err[128], why[160];

	n = client->ops->read(client, p->buf + p->have,
	    sizeof(p->buf) - p->have);
	if (n == -1 && errno == EAGAIN)
		return;
	if (n <= 0) {
		snprintf(why, sizeof(why), "PROXY header: %s", n == 0 ?
		    "connection closed before its end" : strerror(errno));
		conn_refuse(c, why);
		return;
	}
	p->have += (size_t)n;
	switch (proxy_parse(p->buf, p->have, &h, &used, err, sizeof(err))) {
	case PROXY_NEED_MORE:
		return;
	case PROXY_DONE:
		step_finish(c, p, &h, used);
		return;
	case PROXY_ERROR:
		snprintf(why, sizeof(why), "bad PROXY header: %s", err);
		conn_refuse(c, why);
		return;
	}
}

const struct conn_step proxy_step = {
	"PROXY header", step_start, step_ready, step_free, 1
};
