/* The config file: a global part and [relay NAME] / [tunnel NAME]
 * sections whose keys are the long options. */
#ifndef RELAY_CFGFILE_H
#define RELAY_CFGFILE_H

#include <stdio.h>

#include "relay/config.h"

/*
 * Reads path into cfg. Every problem is logged as "FILE:LINE: message";
 * returns how many there were (0: all good). Refuses, when euid is root,
 * a file that group or others may write.
 */
int	cfgfile_load(struct config *cfg, const char *path);
/* The same for an open stream (the caller closes it), name used in the
 * messages: no permission check, so a fuzzer can feed it from memory. */
int	cfgfile_read(struct config *cfg, FILE *fp, const char *name);

#endif
