/* HTTP/1.x request heads: the request line, then header lines skipped. */
#include <string.h>

#include "relay/httphead.h"

/* The length of the line at p (its end excluded), with *next past its
 * end, or -1 if no line end is in [p, end). */
static long
line_at(const char *p, const char *end, const char **next)
{
	const char	*nl = memchr(p, '\n', (size_t)(end - p));
	long		 n;

	if (nl == NULL)
		return -1;
	*next = nl + 1;
	n = nl - p;
	if (n > 0 && p[n - 1] == '\r')
		n--;
	return n;
}

/* Whether the n bytes at p are printable ASCII (tab and space too). */
static int
printable(const char *p, long n)
{
	long	i;

	for (i = 0; i < n; i++)
		if ((p[i] < ' ' && p[i] != '\t') || p[i] == 0x7f ||
		    (unsigned char)p[i] >= 0x80)
			return 0;
	return 1;
}

/* "METHOD /path HTTP/1.x": -1 if it is not that. */
static int
request_line(const char *p, long n, struct http_head *h)
{
	const char	*sp1, *sp2, *q;
	size_t		 mlen, plen;

	if ((sp1 = memchr(p, ' ', (size_t)n)) == NULL ||
	    (sp2 = memchr(sp1 + 1, ' ', (size_t)(p + n - sp1 - 1))) == NULL)
		return -1;
	mlen = (size_t)(sp1 - p);
	plen = (size_t)(sp2 - sp1 - 1);
	if (mlen == 0 || mlen > HTTP_METHOD_MAX || plen == 0 ||
	    plen > HTTP_PATH_MAX || sp1[1] != '/')
		return -1;
	for (q = p; q < sp1; q++)
		if (*q < 'A' || *q > 'Z')
			return -1;
	for (q = sp1 + 1; q < sp2; q++)
		if (*q == ' ' || *q == '\t')
			return -1;
	if (p + n - sp2 - 1 != 8 || memcmp(sp2 + 1, "HTTP/1.", 7) != 0 ||
	    sp2[8] < '0' || sp2[8] > '9')
		return -1;
	memcpy(h->method, p, mlen);
	h->method[mlen] = '\0';
	memcpy(h->path, sp1 + 1, plen);
	h->path[plen] = '\0';
	h->path[strcspn(h->path, "?#")] = '\0';
	h->minor = sp2[8] - '0';
	return 0;
}

long
http_head_parse(const char *buf, size_t len, struct http_head *h)
{
	const char	*p = buf, *end = buf + len, *next;
	long		 n;
	int		 first = 1;

	if (len > HTTP_HEAD_MAX)
		end = buf + HTTP_HEAD_MAX;
	while ((n = line_at(p, end, &next)) != -1) {
		if (!printable(p, n))
			return -1;
		if (first) {
			if (request_line(p, n, h) == -1)
				return -1;
			first = 0;
		} else if (n == 0)
			return next - buf;
		else if (p[0] == ' ' || p[0] == '\t' ||
		    memchr(p, ':', (size_t)n) == NULL)
			return -1;	/* no folded lines, no bare words */
		p = next;
	}
	/* Nothing complete yet: a line being written must still be one. */
	if (!printable(p, (long)(end - p) - (end > p && end[-1] == '\r')))
		return -1;
	return len >= HTTP_HEAD_MAX ? -1 : 0;
}
