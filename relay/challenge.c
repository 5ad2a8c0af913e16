/* The HTTP-01 tokens being validated: a short list under a lock. */
#include <sys/queue.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "relay/challenge.h"

struct challenge {
	LIST_ENTRY(challenge)	 entry;
	char			*token;
	char			*keyauth;
};

static LIST_HEAD(, challenge)	challenges = LIST_HEAD_INITIALIZER(challenges);
static pthread_mutex_t		lock = PTHREAD_MUTEX_INITIALIZER;

int
challenge_add(const char *token, const char *keyauth)
{
	struct challenge	*ch;

	if ((ch = calloc(1, sizeof(*ch))) == NULL ||
	    (ch->token = strdup(token)) == NULL ||
	    (ch->keyauth = strdup(keyauth)) == NULL) {
		if (ch != NULL)
			free(ch->token);
		free(ch);
		return -1;
	}
	pthread_mutex_lock(&lock);
	LIST_INSERT_HEAD(&challenges, ch, entry);
	pthread_mutex_unlock(&lock);
	return 0;
}

void
challenge_remove(const char *token)
{
	struct challenge	*ch;

	pthread_mutex_lock(&lock);
	LIST_FOREACH(ch, &challenges, entry)
		if (strcmp(ch->token, token) == 0)
			break;
	if (ch != NULL)
		LIST_REMOVE(ch, entry);
	pthread_mutex_unlock(&lock);
	if (ch != NULL) {
		free(ch->token);
		free(ch->keyauth);
		free(ch);
	}
}

int
challenge_reply(const char *target, char *out, size_t outlen)
{
	struct challenge	*ch;
	const char		*token;
	int			 n;

	if (strncmp(target, CHALLENGE_PREFIX, strlen(CHALLENGE_PREFIX)) != 0)
		return 0;
	token = target + strlen(CHALLENGE_PREFIX);
	pthread_mutex_lock(&lock);
	LIST_FOREACH(ch, &challenges, entry)
		if (*token != '\0' && strcmp(ch->token, token) == 0)
			break;
	if (ch != NULL)
		n = snprintf(out, outlen, "HTTP/1.1 200 OK\r\nContent-Type: "
		    "text/plain\r\nContent-Length: %zu\r\nConnection: close"
		    "\r\n\r\n%s", strlen(ch->keyauth), ch->keyauth);
	else
		n = snprintf(out, outlen, "HTTP/1.1 404 Not Found\r\n"
		    "Content-Type: text/plain\r\nContent-Length: 10\r\n"
		    "Connection: close\r\n\r\nnot found\n");
	pthread_mutex_unlock(&lock);
	return n > 0 && (size_t)n < outlen ? 1 : -1;
}
