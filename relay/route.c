/* Picking a route by name: exact names first, then one-label wildcards. */
#include <string.h>
#include <strings.h>

#include "relay/route.h"

/* Whether "*.rest" covers host: one non-empty label, a dot, then rest. */
static int
wildcard_covers(const char *pattern, const char *host)
{
	const char	*dot = strchr(host, '.');

	return pattern[0] == '*' && pattern[1] == '.' && dot != NULL &&
	    dot != host && strcasecmp(dot + 1, pattern + 2) == 0;
}

int
route_match(const char *const *names, size_t n, const char *host)
{
	size_t	i;

	if (*host == '\0')
		return -1;
	for (i = 0; i < n; i++)
		if (names[i][0] != '*' && strcasecmp(names[i], host) == 0)
			return (int)i;
	for (i = 0; i < n; i++)
		if (wildcard_covers(names[i], host))
			return (int)i;
	return -1;
}
