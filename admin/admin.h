/* remap admin library: the commands an administrator runs on an engine,
 * their grammar, their text and JSON rendering, and the control socket
 * (server and client).  Used by the plugin (control=) and by remapctl
 * (offline on its own engine, online through the socket), so both print
 * the same bytes from the same code.  The engine (core/) holds no argv and
 * no text; this library holds no engine internals: it uses the public API
 * of include/remap/remap.h only.
 *
 * Commands (the table in commands.c; `help' prints it):
 *
 *   status                         counters, state, geometry
 *   list                           the table: mapped, pending and bad slots
 *   lookup LBA                     where one LBA's unit lives
 *   remap LBA [COUNT]              move every unit touched to the spare
 *   unmap LBA [COUNT] [--discard-data]
 *   pending LBA [COUNT]            record units as pending
 *   export --format badblocks --block-size N | --format ddrescue
 *   scan LBA [COUNT]               read the units that are not remapped
 *   spare-retest [FIRST [COUNT]]   re-test bad spare units
 *   import [--pending] OFF+LEN,... remap (or mark pending) a parsed list
 *   help                           the list of commands
 *
 * Output goes to a sink (struct remap_out) that either grows in memory or
 * is flushed in chunks of at most REMAP_OUT_CHUNK bytes (the control
 * socket streams them), so a large reply never sits whole in memory.  A
 * long command checks the sink between bounded steps and stops with
 * -ECANCELED when the sink is cancelled (client gone, server stopping).
 *
 * Thread-safety: as far as the engine's API is (several commands may run
 * on one engine at once); a sink belongs to one thread.
 */
#ifndef REMAP_ADMIN_H
#define REMAP_ADMIN_H

#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "remap/error.h"

struct remap_engine;
struct json_object;

/* The sector size of LBA arguments (like dmsetup and badblocks -b 512). */
#define REMAP_CONTROL_SECTOR 512u
/* Longest request line the control socket accepts, newline included. */
#define REMAP_CONTROL_MAX_LINE 4096u
/* Most arguments in one request. */
#define REMAP_CONTROL_MAX_ARGS 64u

/* ---- growable buffer ------------------------------------------------- */

/* A growable, always NUL-terminated byte buffer.  Zero-initialise it.
 * After an allocation failure `failed' is set and appends are ignored. */
struct remap_buf {
  char *data;                   /* NULL until the first append */
  size_t len;                   /* bytes, not counting the NUL */
  size_t cap;
  bool failed;
};

/* Append; 0 or -ENOMEM. */
int remap_buf_append (struct remap_buf *b, const char *s, size_t n);
int remap_buf_printf (struct remap_buf *b, const char *fmt, ...)
  __attribute__ ((format (printf, 2, 3)));
int remap_buf_vprintf (struct remap_buf *b, const char *fmt, va_list ap)
  __attribute__ ((format (printf, 2, 0)));
/* Append s as a JSON string literal (quotes included). */
int remap_buf_json_string (struct remap_buf *b, const char *s);
/* Empty it (keeps the memory). */
void remap_buf_reset (struct remap_buf *b);
/* Free the memory; b is empty and reusable afterwards. */
void remap_buf_free (struct remap_buf *b);

/* ---- output sink ----------------------------------------------------- */

/* Largest chunk a streaming sink holds before it flushes. */
#define REMAP_OUT_CHUNK 65536u

/* Where a command's output goes.  Set it up with remap_out_memory or
 * remap_out_stream.  The first failure (-ENOMEM, or what flush or
 * cancelled returned) is kept in err; writes after it are dropped. */
struct remap_out {
  struct remap_buf b;           /* pending bytes (all of them in memory) */
  struct remap_buf *mem;        /* memory sink: output appended here */
  /* Streaming sink: flush writes n bytes (0 or -errno); cancelled
   * returns 0 to go on or -errno (-ECANCELED, -EPIPE) to stop. */
  int (*flush) (void *opaque, const char *p, size_t n);
  int (*cancelled) (void *opaque);
  void *opaque;
  int err;                      /* the first failure: later output dropped */
  int stop;                     /* cancelled (remap_out_check): the command
                                   stops, but what it wrote still goes out,
                                   so that a client still there (the server
                                   is stopping) learns which steps were
                                   done */
};

/* Everything appended to *mem (not freed by remap_out_finish). */
void remap_out_memory (struct remap_out *o, struct remap_buf *mem);
/* Chunks of at most REMAP_OUT_CHUNK bytes to flush; cancelled may be
 * NULL. */
void remap_out_stream (struct remap_out *o,
                       int (*flush) (void *, const char *, size_t),
                       int (*cancelled) (void *), void *opaque);
/* 0 or the sink's error. */
int remap_out_write (struct remap_out *o, const char *p, size_t n);
int remap_out_printf (struct remap_out *o, const char *fmt, ...)
  __attribute__ ((format (printf, 2, 3)));
/* o as compact JSON (json-c), on one line: no newline added. */
int remap_out_json (struct remap_out *o, struct json_object *obj);
/* Between steps of a long command: 0 to go on, or the reason to stop
 * (-ECANCELED, the sink's error). */
int remap_out_check (struct remap_out *o);
/* Flush what is pending, free the chunk buffer; returns the sink's
 * error (0 if none). */
int remap_out_finish (struct remap_out *o);

/* ---- the command table ----------------------------------------------- */

/* Options of the engine commands.  A command accepts those in its mask. */
enum {
  REMAP_OPT_JSON = 1u << 0,         /* --json */
  REMAP_OPT_UNITS = 1u << 1,        /* -u, --unit-numbers */
  REMAP_OPT_DISCARD = 1u << 2,      /* --discard-data */
  REMAP_OPT_FORMAT = 1u << 3,       /* -f, --format NAME */
  REMAP_OPT_BLOCK_SIZE = 1u << 4,   /* -b, --block-size N */
  REMAP_OPT_PENDING = 1u << 5,      /* --pending */
};

struct remap_option {
  unsigned flag;
  const char *long_name;        /* "--json" */
  const char *short_name;       /* "-u", or NULL */
  const char *value;            /* "N": takes a value; NULL: a switch */
  const char *help;
};
/* Every option, ending with { 0 }. */
extern const struct remap_option remap_options[];

#define REMAP_MAX_POS 4

/* A parsed command line. */
struct remap_args {
  bool json, units, discard, pending;
  const char *format;           /* NULL: not given */
  uint64_t block_size;          /* 0: not given */
  int npos;
  const char *pos[REMAP_MAX_POS];
};

struct remap_command;
typedef int remap_command_fn (struct remap_engine *e,
                              const struct remap_command *c,
                              const struct remap_args *a,
                              struct remap_out *out, struct remap_error *err);

/* One entry of the table: it drives parsing (args, options, min_pos,
 * max_pos), help (args, summary) and dispatch (fn). */
struct remap_command {
  const char *name;
  const char *args;             /* positional arguments: "LBA [COUNT]" */
  unsigned options;             /* REMAP_OPT_* accepted */
  int min_pos, max_pos;
  const char *summary;          /* one line for help */
  remap_command_fn *fn;
  int op;                       /* a parameter for shared handlers */
};
/* The engine commands, ending with { NULL }. */
extern const struct remap_command remap_commands[];

/* The entry named name, or NULL. */
const struct remap_command *remap_command_find (const char *name);
/* "remap LBA [COUNT] [-u] [--json]" into buf (truncated to len). */
void remap_command_usage (const struct remap_command *c, char *buf,
                          size_t len);
/* Parse argv (argv[0] is the command's name) by c's grammar.  0, or
 * -EINVAL with a message that names the problem and the usage. */
int remap_command_parse (const struct remap_command *c, int argc,
                         char *const *argv, struct remap_args *a,
                         struct remap_error *err);

/* Run one command (argv[0] its name) with output to out.  Returns 0, or a
 * negative errno with a one-line message in err: -EINVAL for a usage error
 * (unknown command, bad number, LBA past the end), -ECANCELED when out was
 * cancelled, anything else from the engine (-EIO, -ENOSPC, -EBUSY ...).
 * On failure out may hold the output of the part that succeeded.  Does
 * not finish out. */
int remap_admin_exec (struct remap_engine *e, int argc, char *const *argv,
                      struct remap_out *out, struct remap_error *err);

/* remap_admin_exec into a memory buffer (output appended to *out). */
int remap_control_exec (struct remap_engine *e, int argc, char *const *argv,
                        struct remap_buf *out, struct remap_error *err);

/* Split a request line in place into at most max arguments separated by
 * spaces or tabs (a trailing "\n" or "\r\n" is removed).  Returns the
 * number of arguments, or -EINVAL if there are more than max or the line
 * holds a control character. */
int remap_control_split (char *line, char **argv, int max);

/* Name of a slot state: "free", "mapped", "pending", "bad". */
const char *remap_slot_state_name (int state);

/* ---- reading JSON replies (json-c) ----------------------------------- */

/* Parse a whole reply; NULL if it is not one JSON value.  Free with
 * json_object_put. */
struct json_object *remap_json_parse (const char *text, size_t len);
/* The unsigned number at a dotted path ("geometry.unit"); false if it is
 * absent or not a non-negative integer. */
bool remap_json_u64 (struct json_object *o, const char *path, uint64_t *v);
/* The string at a dotted path, or NULL (owned by o). */
const char *remap_json_str (struct json_object *o, const char *path);
/* The array at a dotted path, or NULL (owned by o). */
struct json_object *remap_json_array (struct json_object *o,
                                      const char *path);

/* ---- the control socket ------------------------------------------------ */

/* Protocol (remapctl.pod, CONTROL SOCKET): the client connects, sends ONE
 * request line (at most REMAP_CONTROL_MAX_LINE bytes with its "\n").  The
 * server answers with frames: "D <n>\n" followed by n bytes of output
 * (0 < n <= REMAP_OUT_CHUNK), any number of times, then one status line,
 * "OK\n" or "ERR <errno> <message>\n", and closes the connection. */

struct remap_ctl_server;

struct remap_ctl_config {
  unsigned max_workers;         /* commands running at once (default 4) */
  unsigned max_waiting;         /* connections still sending their request
                                   (default 64) */
  int request_timeout_ms;       /* to send the whole request (default 5000) */
  int send_timeout_ms;          /* for each chunk of the reply to leave
                                   (default 10000) */
  /* Debug and error messages (may be NULL): level is REMAP_LOG_*. */
  void (*log) (int level, const char *msg);
};

/* Create the AF_UNIX socket at path (mode 0600) and listen.  Refuses
 * (-EEXIST) if path exists and is not a stale socket (a socket nobody
 * listens on is replaced); -errno with a message in err. */
int remap_ctl_server_listen (const char *path, struct remap_ctl_server **s,
                      struct remap_error *err);
/* Serve commands on engine e (threads).  cfg may be NULL (defaults).
 * 0 or -errno with a message. */
int remap_ctl_server_serve (struct remap_ctl_server *s, struct remap_engine *e,
                     const struct remap_ctl_config *cfg,
                     struct remap_error *err);
/* Stop: waiting clients are dropped, running commands stop at their next
 * step (each step is bounded: one unit, or one read of at most 4 MiB),
 * every thread is joined.  Removes the socket's path if unlink_path.  Frees
 * s.  Safe on NULL. */
void remap_ctl_server_close (struct remap_ctl_server *s, bool unlink_path);
/* The absolute path of the socket. */
const char *remap_ctl_server_path (const struct remap_ctl_server *s);

/* Client: send one command (argv[0] its name) to the socket at path;
 * output to out as it arrives.  0, the server's -errno (with its message
 * in err), or for a socket problem -ECONNREFUSED (cannot connect),
 * -ECONNRESET (connection lost), -EPROTO (bad reply), -E2BIG (request too
 * long), -EINVAL (an argument holds white space or is empty). */
int remap_ctl_request (const char *path, int argc, char *const *argv,
                       struct remap_out *out, struct remap_error *err);

#endif /* REMAP_ADMIN_H */
