/*
 * The first bytes of a plain connection, peeked as an HTTP/1.x request
 * head for its Host. Beyond surviving: a verdict by 64 KiB, a name of
 * lowercase host characters only, and once done, every longer input (the
 * body that follows) gives the same verdict and name.
 */
#include <ctype.h>

#include "relay/peek.h"
#include "tests/fuzz/fuzz.h"

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	char			name[PEEK_NAME_MAX], again[PEEK_NAME_MAX];
	char			err[128] = "";
	enum peek_status	st;
	uint8_t			*more;
	size_t			i;

	fuzz_quiet();
	st = peek_http_host(data, size, name, sizeof(name), err, sizeof(err));
	switch (st) {
	case PEEK_ERROR:
		FUZZ_CHECK(err[0] != '\0', "an error without a message");
		return 0;
	case PEEK_NEED_MORE:
		FUZZ_CHECK(size < PEEK_MAX, "%zu bytes and no verdict", size);
		return 0;
	case PEEK_DONE:
		break;
	}
	for (i = 0; name[i] != '\0'; i++)
		FUZZ_CHECK(!isupper((unsigned char)name[i]) &&
		    isgraph((unsigned char)name[i]), "bad byte in \"%s\"", name);
	if ((more = malloc(size + 7)) == NULL)
		return 0;
	memcpy(more, data, size);
	memcpy(more + size, "\x00\xff" "body\n", 7);
	FUZZ_CHECK(peek_http_host(more, size + 7, again, sizeof(again), err,
	    sizeof(err)) == PEEK_DONE && strcmp(name, again) == 0,
	    "what follows the head changed the verdict");
	free(more);
	return 0;
}
