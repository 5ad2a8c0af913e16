/*
 * SOCKS5 from a -D client. The input is what the client sends, greeting
 * then request, read the way tunnel/socks_conn.c reads it: the length
 * functions say how much to take, the parser then sees exactly that. The
 * first byte sets how many bytes each read returns, so short reads are
 * covered too.
 */
#include "tunnel/socks.h"
#include "tests/fuzz/fuzz.h"

/* Feeds up to chunk bytes per read into buf as the connection does;
 * returns how many bytes the message took (*have), -1 if it fails. */
static int
read_message(const uint8_t **in, size_t *left, size_t chunk, int request,
    uint8_t *buf, size_t *have)
{
	size_t	need, n;

	*have = 0;
	for (;;) {
		need = request ? socks_request_len(buf, *have) :
		    socks_greeting_len(buf, *have);
		if (need == 0 || need > SOCKS_MAX_REQUEST)
			return -1;
		FUZZ_CHECK(need > *have, "length %zu with %zu bytes in", need,
		    *have);
		if (*left == 0)
			return -1;	/* the client went away */
		n = need - *have;
		n = n < chunk ? n : chunk;
		n = n < *left ? n : *left;
		memcpy(buf + *have, *in, n);
		*have += n;
		*in += n;
		*left -= n;
		need = request ? socks_request_len(buf, *have) :
		    socks_greeting_len(buf, *have);
		if (*have >= need)
			return 0;
	}
}

static void
check_request(const uint8_t *buf, size_t have)
{
	struct addr_spec	to;
	size_t			used = 0;
	uint8_t			rep = 0xff;

	switch (socks_parse_request(buf, have, &used, &to, &rep)) {
	case SOCKS_DONE:
		FUZZ_CHECK(used == have && rep == SOCKS_REP_OK && to.port != 0,
		    "request of %zu bytes: used %zu, rep %u", have, used, rep);
		FUZZ_CHECK(memchr(to.host, '\0', sizeof(to.host)) != NULL &&
		    to.host[0] != '\0', "host not a string");
		break;
	case SOCKS_BAD:
		FUZZ_CHECK(rep != SOCKS_REP_OK, "bad request answered OK");
		break;
	case SOCKS_NEED_MORE:
		/* The reader took all the length asked for. */
		FUZZ_CHECK(0, "request of %zu bytes needs more", have);
	}
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	uint8_t		buf[SOCKS_MAX_REQUEST], reply[SOCKS_REPLY_LEN];
	size_t		chunk, have, used = 0;
	enum socks_parse r;

	if (size == 0)
		return 0;
	chunk = data[0] % 8 == 0 ? SOCKS_MAX_REQUEST : data[0] % 8;
	data++;
	size--;
	/* All the input at once, as a reader not told lengths would pass it. */
	if (socks_parse_greeting(data, size, &used) == SOCKS_DONE)
		FUZZ_CHECK(used <= size && used == socks_greeting_len(data,
		    size), "greeting used %zu of %zu", used, size);
	if (read_message(&data, &size, chunk, 0, buf, &have) == -1)
		return 0;
	r = socks_parse_greeting(buf, have, &used);
	FUZZ_CHECK(r != SOCKS_NEED_MORE, "greeting of %zu bytes needs more",
	    have);
	if (r != SOCKS_DONE)
		return 0;
	FUZZ_CHECK(used == have, "greeting used %zu of %zu", used, have);
	if (read_message(&data, &size, chunk, 1, buf, &have) == -1)
		return 0;
	check_request(buf, have);
	socks_reply(reply, SOCKS_REP_OK);
	return 0;
}
