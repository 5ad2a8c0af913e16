/*
 * The system-call sandbox: once started, relayd makes only the system calls
 * its work needs; any other one ends the process (a few harmless probes get
 * an error instead). The filter cannot be lifted again.
 */
#ifndef CAPS_SANDBOX_H
#define CAPS_SANDBOX_H

#include <stddef.h>

/*
 * Installs the allow-list on every thread of the process (threads started
 * later inherit it). Needs no-new-privs or CAP_SYS_ADMIN. Returns the
 * number of system calls allowed, or -1 with a message.
 */
int	sandbox_enter(char *err, size_t errlen);
/*
 * Narrows the list of sandbox_enter, on the calling thread, for a process
 * that signals no other: kill and tgkill may name only this process, tkill
 * nothing. Returns 0, or -1 with a message.
 */
int	sandbox_signal_only_self(char *err, size_t errlen);

#endif
