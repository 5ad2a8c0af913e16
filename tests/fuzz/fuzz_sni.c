/*
 * The first bytes of a TLS connection, peeked for the server name. Beyond
 * surviving: a verdict once the input is a whole hello or 64 KiB, a name
 * that is lowercase DNS characters only, and the same verdict for the
 * same bytes fed again in two pieces' worth (no state between calls).
 */
#include <ctype.h>

#include "relay/peek.h"
#include "tests/fuzz/fuzz.h"

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	char			name[PEEK_NAME_MAX], again[PEEK_NAME_MAX];
	char			err[128] = "";
	enum peek_status	st, st2;
	size_t			i;

	fuzz_quiet();
	st = peek_tls_sni(data, size, name, sizeof(name), err, sizeof(err));
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
		FUZZ_CHECK(islower((unsigned char)name[i]) ||
		    isdigit((unsigned char)name[i]) || name[i] == '-' ||
		    name[i] == '.' || name[i] == '_', "bad byte in \"%s\"", name);
	st2 = peek_tls_sni(data, size, again, sizeof(again), err, sizeof(err));
	FUZZ_CHECK(st2 == st && strcmp(name, again) == 0, "not repeatable");
	return 0;
}
