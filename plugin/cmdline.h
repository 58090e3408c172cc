/* remap plugin: what nbdkit's own command line says (see cmdline.c). */
#ifndef REMAP_PLUGIN_CMDLINE_H
#define REMAP_PLUGIN_CMDLINE_H

#include <stdbool.h>

/* True if nbdkit was started with -r (--read-only, --readonly).  False
 * when its command line cannot be read (then nbdkit's .open still passes
 * readonly to each connection, but the engine is open for writing). */
bool cmdline_read_only (void);

#endif
