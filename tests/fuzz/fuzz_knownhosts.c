/*
 * known_hosts as tunnel/hostkey.c reads it: our line splitting, then
 * every kept line through libssh2's parser and a lookup for a few hosts,
 * as hostkeys_prefer does before each handshake. The input is the file.
 */
#include <sys/mman.h>
#include <unistd.h>

#include "tunnel/hostkey.h"
#include "tests/fuzz/fuzz.h"

static LIBSSH2_SESSION	*session;
static int		 memfd = -1;
static char		 path[64];

static int
setup(void)
{
	if (session != NULL)
		return 0;
	if (libssh2_init(0) != 0 || (session = libssh2_session_init()) == NULL)
		return -1;
	if ((memfd = memfd_create("known_hosts", MFD_CLOEXEC)) == -1)
		return -1;
	snprintf(path, sizeof(path), "/proc/self/fd/%d", memfd);
	return 0;
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct hostkeys	*hk;
	char		 err[512];

	fuzz_quiet();
	if (setup() == -1 || ftruncate(memfd, 0) == -1 ||
	    pwrite(memfd, data, size, 0) != (ssize_t)size)
		abort();
	if ((hk = hostkeys_load(path, 0, err, sizeof(err))) == NULL)
		return 0;
	hostkeys_prefer(hk, session, "example.com", 22);
	hostkeys_prefer(hk, session, "192.0.2.1", 2222);
	hostkeys_prefer(hk, session, "::1", 22);
	hostkeys_free(hk);
	return 0;
}
