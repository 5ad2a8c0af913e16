/* The step that reads a PROXY header from a new connection's client. */
#ifndef RELAY_PROXY_STEP_H
#define RELAY_PROXY_STEP_H

#include "relay/conn.h"

/*
 * Reads and checks the header, then tells the connection the address it
 * carries (conn_set_origin) and hands on the bytes that came after it
 * (conn_push_target). A bad, cut short or too slow header refuses the
 * connection: nothing is dialled, nothing forwarded.
 */
extern const struct conn_step proxy_step;

#endif
