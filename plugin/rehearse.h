/* remap plugin: rehearsal, a simulated failing origin (SPEC 4.4). */
#ifndef REMAP_PLUGIN_REHEARSE_H
#define REMAP_PLUGIN_REHEARSE_H

#include "remap/backend.h"

/* .config for fail= and fail-file=: 1 handled, 0 not ours, -1 error. */
int rehearse_config (const char *key, const char *value);
/* Wrap *origin in a fault injector if any rule source was given, and load
 * the initial rules (fail= and the current fail-file).  0 or -1 (after
 * nbdkit_error; *origin is then closed). */
int rehearse_wrap (struct remap_backend **origin);
/* Start watching fail-file (in .after_fork).  0 or -1. */
int rehearse_start (void);
/* Stop watching (in .cleanup).  Safe if never started. */
void rehearse_stop (void);

#endif
