/*
 * JSON (RFC 8259) read in place: skip() steps over one value checking its
 * syntax, the lookups walk an object's or array's values with it. Depth is
 * bounded, so a hostile document cannot exhaust the stack.
 */
#include <string.h>

#include "acme/json.h"

#define JSON_DEPTH	32

static const char *skip(const char *p, const char *end, int depth);

static const char *
ws(const char *p, const char *end)
{
	while (p < end && (*p == ' ' || *p == '\t' || *p == '\n' ||
	    *p == '\r'))
		p++;
	return p;
}

static int
hexval(char c)
{
	if (c >= '0' && c <= '9')
		return c - '0';
	if (c >= 'a' && c <= 'f')
		return c - 'a' + 10;
	if (c >= 'A' && c <= 'F')
		return c - 'A' + 10;
	return -1;
}

/* A string's end (past its closing quote), p at its opening quote. */
static const char *
skip_string(const char *p, const char *end)
{
	int	i;

	for (p++; p < end; p++) {
		if (*p == '"')
			return p + 1;
		if ((unsigned char)*p < 0x20)
			return NULL;
		if (*p != '\\')
			continue;
		if (++p == end)
			return NULL;
		if (*p == 'u') {
			for (i = 0; i < 4; i++)
				if (++p == end || hexval(*p) == -1)
					return NULL;
		} else if (strchr("\"\\/bfnrt", *p) == NULL || *p == '\0')
			return NULL;
	}
	return NULL;
}

static const char *
skip_number(const char *p, const char *end)
{
	const char	*start;

	if (p < end && *p == '-')
		p++;
	start = p;
	while (p < end && *p >= '0' && *p <= '9')
		p++;
	if (p == start || (*start == '0' && p - start > 1))
		return NULL;
	if (p < end && *p == '.') {
		start = ++p;
		while (p < end && *p >= '0' && *p <= '9')
			p++;
		if (p == start)
			return NULL;
	}
	if (p < end && (*p == 'e' || *p == 'E')) {
		if (++p < end && (*p == '+' || *p == '-'))
			p++;
		start = p;
		while (p < end && *p >= '0' && *p <= '9')
			p++;
		if (p == start)
			return NULL;
	}
	return p;
}

static const char *
skip_word(const char *p, const char *end, const char *w)
{
	size_t	n = strlen(w);

	return (size_t)(end - p) >= n && memcmp(p, w, n) == 0 ? p + n : NULL;
}

/* Members or elements up to the closing bracket; p past the opening. */
static const char *
skip_container(const char *p, const char *end, int depth, char close)
{
	p = ws(p, end);
	if (p < end && *p == close)
		return p + 1;
	for (;;) {
		if (close == '}') {
			if (p == end || *p != '"' ||
			    (p = skip_string(p, end)) == NULL)
				return NULL;
			p = ws(p, end);
			if (p == end || *p != ':')
				return NULL;
			p++;
		}
		if ((p = skip(p, end, depth + 1)) == NULL)
			return NULL;
		if (p == end)
			return NULL;
		if (*p == close)
			return p + 1;
		if (*p != ',')
			return NULL;
		p = ws(p + 1, end);
	}
}

/* One value and the spaces after it; NULL when malformed. */
static const char *
skip(const char *p, const char *end, int depth)
{
	p = ws(p, end);
	if (p == end || depth > JSON_DEPTH)
		return NULL;
	switch (*p) {
	case '{':
		p = skip_container(p + 1, end, depth, '}');
		break;
	case '[':
		p = skip_container(p + 1, end, depth, ']');
		break;
	case '"':
		p = skip_string(p, end);
		break;
	case 't':
		p = skip_word(p, end, "true");
		break;
	case 'f':
		p = skip_word(p, end, "false");
		break;
	case 'n':
		p = skip_word(p, end, "null");
		break;
	default:
		p = skip_number(p, end);
		break;
	}
	return p == NULL ? NULL : ws(p, end);
}

/* The value at p without the spaces after it. */
static void
span_at(const char *p, const char *next, struct json_span *out)
{
	while (next > p && (next[-1] == ' ' || next[-1] == '\t' ||
	    next[-1] == '\n' || next[-1] == '\r'))
		next--;
	out->p = p;
	out->len = (size_t)(next - p);
}

int
json_parse(const char *buf, size_t len, struct json_span *out)
{
	const char	*p = ws(buf, buf + len), *next;

	if ((next = skip(p, buf + len, 0)) == NULL || next != buf + len)
		return -1;
	span_at(p, next, out);
	return 0;
}

/* Spans come from json_parse, so what is inside them is well formed. */
int
json_member(const struct json_span *obj, const char *key,
    struct json_span *out)
{
	const char	*p, *end = obj->p + obj->len, *k, *v, *next;
	size_t		 klen = strlen(key);

	if (obj->len < 2 || obj->p[0] != '{')
		return -1;
	p = ws(obj->p + 1, end);
	while (p < end && *p == '"') {
		k = p;
		if ((p = skip_string(p, end)) == NULL)
			return -1;
		/* Keys are compared as sent: ACME's have no escapes. */
		v = ws(ws(p, end) + 1, end);
		if ((next = skip(v, end, 1)) == NULL)
			return -1;
		if ((size_t)(p - k) == klen + 2 && memcmp(k + 1, key, klen) ==
		    0) {
			span_at(v, next, out);
			return 0;
		}
		if (next == end || *next != ',')
			return -1;
		p = ws(next + 1, end);
	}
	return -1;
}

int
json_element(const struct json_span *arr, size_t i, struct json_span *out)
{
	const char	*p, *end = arr->p + arr->len, *next;

	if (arr->len < 2 || arr->p[0] != '[')
		return -1;
	p = ws(arr->p + 1, end);
	if (p < end && *p == ']')
		return -1;
	for (;; i--) {
		if ((next = skip(p, end, 1)) == NULL)
			return -1;
		if (i == 0) {
			span_at(p, next, out);
			return 0;
		}
		if (next == end || *next != ',')
			return -1;
		p = ws(next + 1, end);
	}
}

/* Appends code point u as UTF-8: 0, or -1 when it does not fit. */
static int
put_utf8(unsigned long u, char *out, size_t outlen, size_t *n)
{
	unsigned char	b[4];
	size_t		k;

	if (u < 0x80) {
		b[0] = (unsigned char)u;
		k = 1;
	} else if (u < 0x800) {
		b[0] = (unsigned char)(0xc0 | (u >> 6));
		b[1] = (unsigned char)(0x80 | (u & 0x3f));
		k = 2;
	} else if (u < 0x10000) {
		b[0] = (unsigned char)(0xe0 | (u >> 12));
		b[1] = (unsigned char)(0x80 | ((u >> 6) & 0x3f));
		b[2] = (unsigned char)(0x80 | (u & 0x3f));
		k = 3;
	} else {
		b[0] = (unsigned char)(0xf0 | (u >> 18));
		b[1] = (unsigned char)(0x80 | ((u >> 12) & 0x3f));
		b[2] = (unsigned char)(0x80 | ((u >> 6) & 0x3f));
		b[3] = (unsigned char)(0x80 | (u & 0x3f));
		k = 4;
	}
	if (*n + k >= outlen)
		return -1;
	memcpy(out + *n, b, k);
	*n += k;
	return 0;
}

static unsigned long
hex4(const char *p)
{
	return (unsigned long)(hexval(p[0]) << 12 | hexval(p[1]) << 8 |
	    hexval(p[2]) << 4 | hexval(p[3]));
}

int
json_str(const struct json_span *v, char *out, size_t outlen)
{
	const char	*p, *end = v->p + v->len - 1;
	const char	*esc = "\"\\/bfnrt", *to = "\"\\/\b\f\n\r\t";
	unsigned long	 u, lo;
	size_t		 n = 0;

	if (outlen == 0 || v->len < 2 || v->p[0] != '"' || *end != '"')
		return -1;
	for (p = v->p + 1; p < end; p++) {
		if (*p != '\\') {
			if (n + 1 >= outlen)
				return -1;
			out[n++] = *p;
			continue;
		}
		if (*++p != 'u') {
			if (n + 1 >= outlen)
				return -1;
			out[n++] = to[strchr(esc, *p) - esc];
			continue;
		}
		u = hex4(p + 1);
		p += 4;
		/* A surrogate pair is one code point; a lone half is not. */
		if (u >= 0xd800 && u < 0xdc00 && end - p > 6 && p[1] == '\\' &&
		    p[2] == 'u' && (lo = hex4(p + 3)) >= 0xdc00 && lo < 0xe000) {
			u = 0x10000 + ((u - 0xd800) << 10) + (lo - 0xdc00);
			p += 6;
		} else if (u >= 0xd800 && u < 0xe000)
			return -1;
		if (u == 0 || put_utf8(u, out, outlen, &n) == -1)
			return -1;
	}
	out[n] = '\0';
	return 0;
}

int
json_member_str(const struct json_span *obj, const char *key, char *out,
    size_t outlen)
{
	struct json_span	v;

	return json_member(obj, key, &v) == -1 ? -1 :
	    json_str(&v, out, outlen);
}
