/* The byte pump: moves bytes both ways between two endpoints. */
#ifndef RELAY_PUMP_H
#define RELAY_PUMP_H

#include <stdint.h>

#include "relay/endpoint.h"

/* One direction: bytes read from src wait in buf[off, len) for dst. */
struct flow {
	struct endpoint	*src, *dst;
	char		*buf;
	uint32_t	 off, len;
	uint64_t	 bytes;
	uint8_t		 eof;	/* src said EOF */
	uint8_t		 shut;	/* EOF passed on to dst */
};

enum pump_status { PUMP_RUNNING, PUMP_DONE, PUMP_FAILED };

struct pump {
	struct endpoint	*a, *b;
	struct flow	 ab, ba;
	struct endpoint	*failed;	/* which side failed, on PUMP_FAILED */
	int		 error;		/* its errno */
};

/* Starts moving bytes between a and b (not owned: the caller frees them). */
void	pump_start(struct pump *, struct endpoint *a, struct endpoint *b);
/*
 * Handles readiness of ep (one of the pump's endpoints). PUMP_DONE: both
 * directions delivered their EOF; PUMP_FAILED: see failed and error.
 */
enum pump_status pump_ready(struct pump *, struct endpoint *ep, int what);
/* Stops all interest and gives buffers back; endpoints stay open. */
void	pump_stop(struct pump *);

#endif
