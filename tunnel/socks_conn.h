/*
 * -D: the SOCKS5 handshakes of one forward's clients, each then a
 * connection of the forward's service whose target is the one the client
 * asked for.
 */
#ifndef TUNNEL_SOCKS_CONN_H
#define TUNNEL_SOCKS_CONN_H

#include <sys/socket.h>

struct event_base;
struct endpoint;
struct service;
struct socks_server;

/* Handshakes for svc's clients; NULL on allocation failure. */
struct socks_server *socks_server_new(struct event_base *, struct service *);
/* Drops the handshakes still in progress and frees the server. */
void	socks_server_free(struct socks_server *);
/* Takes an accepted client fd. */
void	socks_accept(struct socks_server *, int fd, const struct sockaddr *,
	    socklen_t);
/* A channel open's report for a -D connection (arg): answers the client,
 * then starts pumping or closes. */
void	socks_answer(struct endpoint *, const char *why, void *arg);

#endif
