/*
 * HTTP request heads, as a scraper of --metrics sends them. Beyond
 * surviving: a head is found whole in exactly its own bytes (every shorter
 * prefix needs more or is already malformed, what follows does not
 * matter), never beyond HTTP_HEAD_MAX, and what it yields is a method of
 * capitals and a path that starts with "/".
 */
#include "relay/httphead.h"
#include "tests/fuzz/fuzz.h"

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct http_head	 h, again;
	const char		*buf = (const char *)data;
	long			 n, m;
	size_t			 i;

	fuzz_quiet();
	memset(&h, 0, sizeof(h));
	if ((n = http_head_parse(buf, size, &h)) <= 0)
		return 0;
	FUZZ_CHECK((size_t)n <= size && n <= HTTP_HEAD_MAX, "length %ld", n);
	FUZZ_CHECK(h.path[0] == '/', "path %s", h.path);
	FUZZ_CHECK(strlen(h.method) > 0 && strspn(h.method,
	    "ABCDEFGHIJKLMNOPQRSTUVWXYZ") == strlen(h.method), "method %s",
	    h.method);
	FUZZ_CHECK(h.minor >= 0 && h.minor <= 9, "minor %d", h.minor);
	m = http_head_parse(buf, (size_t)n, &again);
	FUZZ_CHECK(m == n && strcmp(again.path, h.path) == 0, "alone: %ld", m);
	for (i = 0; i < (size_t)n; i++)
		FUZZ_CHECK(http_head_parse(buf, i, &again) <= 0,
		    "complete at %zu of %ld", i, n);
	return 0;
}
