/* Between the TLS contexts and the TLS endpoints; nothing else includes it. */
#ifndef RELAY_TLS_INT_H
#define RELAY_TLS_INT_H

#include <openssl/ssl.h>

/* A new SSL for one connection, set up as the context says; NULL on
 * failure. */
SSL	*tls_server_ssl(struct tls_server *);
SSL	*tls_client_ssl(struct tls_client *);
/* Writes OpenSSL's last error reason (or fallback) into buf and empties
 * the thread's error queue. */
void	 tls_error(char *buf, size_t len, const char *fallback);

#endif
