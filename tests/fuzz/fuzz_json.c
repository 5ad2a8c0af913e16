/*
 * What an ACME server sends, read by acme/json.c. Beyond surviving: a
 * document json_parse accepts has members and elements that are
 * well-formed values again, and decoded strings hold no NUL.
 */
#include "acme/json.h"
#include "tests/fuzz/fuzz.h"

static const char *const keys[] = { "status", "type", "detail", "url",
    "token", "challenges", "authorizations", "finalize", "certificate",
    "newNonce", "newAccount", "newOrder", "identifier", "value" };

/* Walks v a few levels down, as the ACME client does. */
static void
walk(const struct json_span *v, int depth)
{
	struct json_span	m, again;
	char			s[512];
	size_t			i;

	if (json_str(v, s, sizeof(s)) == 0)
		FUZZ_CHECK(strlen(s) < sizeof(s), "string not terminated");
	if (depth > 4)
		return;
	for (i = 0; i < sizeof(keys) / sizeof(keys[0]); i++)
		if (json_member(v, keys[i], &m) == 0) {
			FUZZ_CHECK(json_parse(m.p, m.len, &again) == 0 &&
			    again.len == m.len, "member is not a value");
			walk(&m, depth + 1);
		}
	for (i = 0; i < 8 && json_element(v, i, &m) == 0; i++) {
		FUZZ_CHECK(json_parse(m.p, m.len, &again) == 0 &&
		    again.len == m.len, "element is not a value");
		walk(&m, depth + 1);
	}
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct json_span	doc;

	fuzz_quiet();
	if (json_parse((const char *)data, size, &doc) == -1)
		return 0;
	walk(&doc, 0);
	return 0;
}
