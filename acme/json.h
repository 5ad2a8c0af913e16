/*
 * A small JSON reader for what an ACME server sends: objects of strings,
 * arrays and a few nested objects. It reads in place, allocates nothing
 * and checks the syntax of whatever it steps over, so a value it returns
 * is well formed; numbers, true, false and null are stepped over, not read.
 */
#ifndef ACME_JSON_H
#define ACME_JSON_H

#include <stddef.h>

/* A value inside a document: its bytes, not terminated. */
struct json_span {
	const char	*p;
	size_t		 len;
};

/* The whole of buf as one value (spaces around allowed): 0, or -1 when
 * it is not exactly one well-formed value. */
int	json_parse(const char *buf, size_t len, struct json_span *out);
/* The value of member key in object obj: 0, or -1 when obj is not an
 * object or has no such member (the first one wins). */
int	json_member(const struct json_span *obj, const char *key,
	    struct json_span *out);
/* The i-th element of array arr: 0, or -1 when there is none. */
int	json_element(const struct json_span *arr, size_t i,
	    struct json_span *out);
/* A string value decoded into out (UTF-8, NUL-terminated): 0, or -1
 * when v is not a string, holds a NUL or does not fit. */
int	json_str(const struct json_span *v, char *out, size_t outlen);
/* member key of obj as a string: json_member then json_str. */
int	json_member_str(const struct json_span *obj, const char *key,
	    char *out, size_t outlen);

#endif
