/*
 * PROXY protocol v1 and v2 headers, as the first bytes a client sends.
 * Beyond surviving: a header is found whole in exactly its own bytes
 * (every shorter prefix needs more, nothing after it matters), and the
 * addresses it carries survive being built into a header and parsed
 * again, in either version.
 */
#include "relay/addr.h"
#include "relay/proxy.h"
#include "tests/fuzz/fuzz.h"

static void
same_addr(const struct sockaddr_storage *a, socklen_t alen,
    const struct sockaddr_storage *b, socklen_t blen)
{
	char	x[ADDR_STR_MAX], y[ADDR_STR_MAX];

	addr_sa_format((const struct sockaddr *)a, alen, x, sizeof(x));
	addr_sa_format((const struct sockaddr *)b, blen, y, sizeof(y));
	FUZZ_CHECK(strcmp(x, y) == 0, "%s came back as %s", x, y);
}

/* Builds a header from h's addresses and parses it back. */
static void
rebuild(const struct proxy_hdr *h, int version)
{
	struct proxy_hdr	g;
	uint8_t			buf[PROXY_BUILD_MAX];
	char			err[256] = "";
	ssize_t			n;
	size_t			used;

	if (version == 1 && h->src.ss_family == AF_UNIX)
		return;		/* v1 has no unix addresses: UNKNOWN */
	n = proxy_build(version, (const struct sockaddr *)&h->src,
	    (const struct sockaddr *)&h->dst, buf, sizeof(buf));
	FUZZ_CHECK(n > 0, "v%d header not built", version);
	FUZZ_CHECK(proxy_parse(buf, (size_t)n, &g, &used, err,
	    sizeof(err)) == PROXY_DONE && used == (size_t)n,
	    "the v%d header built does not parse: %s", version, err);
	FUZZ_CHECK(g.has_addr, "the v%d header built lost its addresses",
	    version);
	same_addr(&h->src, h->srclen, &g.src, g.srclen);
	same_addr(&h->dst, h->dstlen, &g.dst, g.dstlen);
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct proxy_hdr	h, g;
	char			err[256] = "";
	size_t			used = 0, used2 = 0, k;
	uint8_t			*copy;

	fuzz_quiet();
	switch (proxy_parse(data, size, &h, &used, err, sizeof(err))) {
	case PROXY_ERROR:
		FUZZ_CHECK(err[0] != '\0', "an error without a message");
		return 0;
	case PROXY_NEED_MORE:
		FUZZ_CHECK(size < PROXY_V2_MAX, "%zu bytes and no verdict",
		    size);
		return 0;
	case PROXY_DONE:
		break;
	}
	FUZZ_CHECK(used > 0 && used <= size, "used %zu of %zu", used, size);
	/* Exactly its bytes, in a buffer of that size (ASan sees a read past
	 * it), and no prefix of them is a whole header. */
	if ((copy = malloc(used)) == NULL)
		return 0;
	memcpy(copy, data, used);
	FUZZ_CHECK(proxy_parse(copy, used, &g, &used2, err, sizeof(err)) ==
	    PROXY_DONE && used2 == used && g.version == h.version &&
	    g.has_addr == h.has_addr, "not the same header alone");
	for (k = 0; k < used; k++)
		FUZZ_CHECK(proxy_parse(copy, k, &g, &used2, err, sizeof(err)) ==
		    PROXY_NEED_MORE, "%zu of the %zu bytes: not a beginning", k,
		    used);
	free(copy);
	if (h.has_addr) {
		FUZZ_CHECK(h.src.ss_family == h.dst.ss_family,
		    "source and destination families differ");
		rebuild(&h, 1);
		rebuild(&h, 2);
	}
	return 0;
}
