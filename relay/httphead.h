/*
 * The head of an HTTP/1.x request: the request line and the header lines
 * up to the blank line, no more. Enough for a scraper (Prometheus, curl,
 * a load balancer's health check); bodies and headers are not read.
 */
#ifndef RELAY_HTTPHEAD_H
#define RELAY_HTTPHEAD_H

#include <stddef.h>

#define HTTP_HEAD_MAX		4096	/* a longer head is refused */
#define HTTP_METHOD_MAX		15
#define HTTP_PATH_MAX		255

struct http_head {
	char	method[HTTP_METHOD_MAX + 1];	/* "GET" */
	char	path[HTTP_PATH_MAX + 1];	/* "/metrics", query cut off */
	int	minor;				/* HTTP/1.minor */
};

/*
 * Parses the head at the start of buf (len bytes, lines ending in CRLF or
 * LF). Returns its length once it is complete, 0 if more bytes are needed,
 * or -1 if it is malformed (or a line is not plain printable ASCII).
 */
long	http_head_parse(const char *buf, size_t len, struct http_head *);

#endif
