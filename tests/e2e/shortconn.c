/*
 * Many short TCP connections, fast enough to make 100,000 of them in a
 * test: Python would spend more time than relayd. Built by the fault suite.
 *
 *   shortconn echo HOST PORT THREADS
 *	Echoes each connection until EOF, then closes. Prints "ready PORT".
 *   shortconn client HOST PORT COUNT THREADS SIZE [SOURCE]
 *	COUNT connections over THREADS threads, from SOURCE if given; each
 *	sends SIZE bytes that depend on its number, reads them back, checks
 *	them and closes. Prints "ok N failed M first-error ..." and exits 0
 *	only if M is 0.
 */
#include <sys/socket.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <arpa/inet.h>
#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static struct sockaddr_in	peer, source;
static int			has_source;
static long			count, size;
static long			next_conn, ok, failed;
static char			first_error[200];
static pthread_mutex_t		lock = PTHREAD_MUTEX_INITIALIZER;

static int			listener;

static void *
echo_thread(void *arg)
{
	char	buf[16384];
	ssize_t	n;
	int	fd;

	(void)arg;
	for (;;) {
		if ((fd = accept(listener, NULL, NULL)) == -1) {
			if (errno == EINTR || errno == ECONNABORTED)
				continue;
			perror("accept");
			exit(1);
		}
		while ((n = read(fd, buf, sizeof(buf))) > 0)
			if (write(fd, buf, (size_t)n) != n)
				break;
		close(fd);
	}
	return NULL;
}

static void
fail(long i, const char *what)
{
	pthread_mutex_lock(&lock);
	if (failed++ == 0)
		snprintf(first_error, sizeof(first_error), "conn %ld: %s: %s", i,
		    what, strerror(errno));
	pthread_mutex_unlock(&lock);
}

/* One connection: send a pattern of its own, read it back, close. */
static void
one(long i, char *out, char *in)
{
	long	j, got = 0;
	ssize_t	n;
	int	fd;

	for (j = 0; j < size; j++)
		out[j] = (char)(i * 131 + j * 7);
	if ((fd = socket(AF_INET, SOCK_STREAM, 0)) == -1) {
		fail(i, "socket");
		return;
	}
	if (has_source && bind(fd, (struct sockaddr *)&source,
	    sizeof(source)) == -1) {
		fail(i, "bind");
		close(fd);
		return;
	}
	if (connect(fd, (struct sockaddr *)&peer, sizeof(peer)) == -1) {
		fail(i, "connect");
		close(fd);
		return;
	}
	if (write(fd, out, (size_t)size) != size) {
		fail(i, "write");
		close(fd);
		return;
	}
	while (got < size && (n = read(fd, in + got, (size_t)(size - got))) > 0)
		got += n;
	close(fd);
	if (got != size || memcmp(in, out, (size_t)size) != 0) {
		errno = got == size ? EBADMSG : EPIPE;
		fail(i, "echo");
		return;
	}
	pthread_mutex_lock(&lock);
	ok++;
	pthread_mutex_unlock(&lock);
}

static void *
client_thread(void *arg)
{
	char	*out = malloc((size_t)size), *in = malloc((size_t)size);
	long	 i;

	(void)arg;
	if (out == NULL || in == NULL)
		exit(1);
	for (;;) {
		pthread_mutex_lock(&lock);
		i = next_conn++;
		pthread_mutex_unlock(&lock);
		if (i >= count)
			break;
		one(i, out, in);
	}
	free(out);
	free(in);
	return NULL;
}

static int
run_threads(void *(*fn)(void *), long n)
{
	pthread_t	*t = calloc((size_t)n, sizeof(*t));
	long		 i;

	if (t == NULL)
		return -1;
	for (i = 0; i < n; i++)
		if (pthread_create(&t[i], NULL, fn, NULL) != 0)
			return -1;
	for (i = 0; i < n; i++)
		pthread_join(t[i], NULL);
	free(t);
	return 0;
}

int
main(int argc, char **argv)
{
	socklen_t	len = sizeof(peer);
	int		one_ = 1;

	if (argc < 5)
		goto usage;
	memset(&peer, 0, sizeof(peer));
	peer.sin_family = AF_INET;
	peer.sin_port = htons((unsigned short)atoi(argv[3]));
	if (inet_pton(AF_INET, argv[2], &peer.sin_addr) != 1)
		goto usage;
	if (strcmp(argv[1], "echo") == 0) {
		if ((listener = socket(AF_INET, SOCK_STREAM, 0)) == -1 ||
		    setsockopt(listener, SOL_SOCKET, SO_REUSEADDR, &one_,
		    sizeof(one_)) == -1 ||
		    bind(listener, (struct sockaddr *)&peer, sizeof(peer)) == -1 ||
		    listen(listener, 1024) == -1 ||
		    getsockname(listener, (struct sockaddr *)&peer, &len) == -1) {
			perror("listen");
			return 1;
		}
		printf("ready %d\n", ntohs(peer.sin_port));
		fflush(stdout);
		return run_threads(echo_thread, atol(argv[4])) == 0 ? 0 : 1;
	}
	if (strcmp(argv[1], "client") == 0 && (argc == 7 || argc == 8)) {
		if (argc == 8) {
			source.sin_family = AF_INET;
			if (inet_pton(AF_INET, argv[7], &source.sin_addr) != 1)
				goto usage;
			has_source = 1;
		}
		count = atol(argv[4]);
		size = atol(argv[6]);
		if (count < 1 || size < 1 || run_threads(client_thread,
		    atol(argv[5])) == -1)
			goto usage;
		printf("ok %ld failed %ld first-error %s\n", ok, failed,
		    failed ? first_error : "none");
		return failed == 0 ? 0 : 1;
	}
usage:
	fprintf(stderr, "usage: shortconn echo HOST PORT THREADS | "
	    "shortconn client HOST PORT COUNT THREADS SIZE [SOURCE]\n");
	return 64;
}
