/* The byte pump: moves bytes both ways between two endpoints. */
#ifndef RELAY_PUMP_H
#define RELAY_PUMP_H

#include <stdint.h>

#include "relay/endpoint.h"

struct pipebuf;

/*
 * One direction: bytes read from src wait in buf[off, len) for dst or,
 * when both ends are TCP sockets (srcfd and dstfd not -1), in a pipe.
 */
struct flow {
	struct endpoint	*src, *dst;
	char		*buf;
	uint32_t	 off, len;
	uint64_t	 bytes;		/* taken from src, either way */
	uint64_t	 spliced;	/* of which through the pipe */
	struct pipebuf	*pipe;		/* held only while piped > 0 */
	uint32_t	 piped;
	int		 srcfd, dstfd;	/* -1: copy only */
	uint8_t		 bulk;	/* a read filled the buffer: splice now */
	uint8_t		 eof;	/* src said EOF */
	uint8_t		 hup;	/* src told that its EOF has arrived */
	uint8_t		 shut;	/* EOF passed on to dst */
};

enum pump_status { PUMP_RUNNING, PUMP_DONE, PUMP_FAILED };

struct pump {
	struct endpoint	*a, *b;
	struct flow	 ab, ba;
	struct endpoint	*failed;	/* which side failed, on PUMP_FAILED */
	int		 error;		/* its errno */
	uint8_t		 splice;	/* both ends spliceable, splice on */
};

/* Turns splice() on (the default) or off for pumps started from now on,
 * in every thread. */
void	pump_set_splice(int on);
/* Starts moving bytes between a and b (not owned: the caller frees them). */
void	pump_start(struct pump *, struct endpoint *a, struct endpoint *b);
/*
 * Handles readiness of ep (one of the pump's endpoints). PUMP_DONE: both
 * directions delivered their EOF, the last one to a bare socket (see
 * endpoint_ops.splice_fd) only when the caller closes it, which it must
 * do at once; PUMP_FAILED: see failed and error.
 */
enum pump_status pump_ready(struct pump *, struct endpoint *ep, int what);
/* Stops all interest and gives buffers and pipes back (a pipe that still
 * holds bytes is closed); endpoints stay open. */
void	pump_stop(struct pump *);

#endif
