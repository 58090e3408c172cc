/* remap plugin: was nbdkit started with -r?
 *
 * nbdkit tells a plugin about -r only per connection (.open's readonly
 * argument), long after .get_ready has opened the engine, repaired the
 * spare's copies and let reads record pending units: all writes that -r
 * forbids.  nbdkit (1.32) exports no call that says it earlier, so this
 * file reads nbdkit's own argv from /proc/self/cmdline and parses it with
 * getopt_long and nbdkit's option table, the way nbdkit itself did: the
 * same permutation, clusters (-fr), abbreviations (--read) and option
 * arguments (a -r inside --run '...' or -D's value is not the flag).
 *
 * It runs once, in .config_complete, single-threaded; getopt's globals are
 * saved and restored around it.  An option this table does not know (a
 * newer nbdkit) is skipped; should it take a separate argument that
 * argument is seen as an operand, which only matters if it is "-r".
 */
#include <fcntl.h>
#include <getopt.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "cmdline.h"

#define MAX_CMDLINE (1 << 20)

/* nbdkit's options (server/options.h), by what getopt needs: which take
 * an argument.  Only 'r' matters here. */
static const char short_options[] = "46D:e:fg:i:nop:P:rst:u:U:vV";
static const struct option long_options[] = {
  { "read-only", no_argument, NULL, 'r' },
  { "readonly", no_argument, NULL, 'r' },
  { "debug", required_argument, NULL, 'D' },
  { "export", required_argument, NULL, 'e' },
  { "export-name", required_argument, NULL, 'e' },
  { "exportname", required_argument, NULL, 'e' },
  { "group", required_argument, NULL, 'g' },
  { "ip-addr", required_argument, NULL, 'i' },
  { "ipaddr", required_argument, NULL, 'i' },
  { "pid-file", required_argument, NULL, 'P' },
  { "pidfile", required_argument, NULL, 'P' },
  { "port", required_argument, NULL, 'p' },
  { "threads", required_argument, NULL, 't' },
  { "unix", required_argument, NULL, 'U' },
  { "user", required_argument, NULL, 'u' },
  { "filter", required_argument, NULL, 1 },
  { "log", required_argument, NULL, 1 },
  { "mask-handshake", required_argument, NULL, 1 },
  { "run", required_argument, NULL, 1 },
  { "selinux-label", required_argument, NULL, 1 },
  { "tls", required_argument, NULL, 1 },
  { "tls-certificates", required_argument, NULL, 1 },
  { "tls-psk", required_argument, NULL, 1 },
  { "ipv4-only", no_argument, NULL, '4' },
  { "ipv6-only", no_argument, NULL, '6' },
  { "dump-config", no_argument, NULL, 1 },
  { "dump-plugin", no_argument, NULL, 1 },
  { "exit-with-parent", no_argument, NULL, 1 },
  { "foreground", no_argument, NULL, 'f' },
  { "no-fork", no_argument, NULL, 'f' },
  { "help", no_argument, NULL, 1 },
  { "long-options", no_argument, NULL, 1 },
  { "new-style", no_argument, NULL, 'n' },
  { "newstyle", no_argument, NULL, 'n' },
  { "no-sr", no_argument, NULL, 1 },
  { "old-style", no_argument, NULL, 'o' },
  { "oldstyle", no_argument, NULL, 'o' },
  { "short-options", no_argument, NULL, 1 },
  { "single", no_argument, NULL, 's' },
  { "stdin", no_argument, NULL, 's' },
  { "swap", no_argument, NULL, 1 },
  { "tls-verify-peer", no_argument, NULL, 1 },
  { "verbose", no_argument, NULL, 'v' },
  { "version", no_argument, NULL, 'V' },
  { "vsock", no_argument, NULL, 1 },
  { NULL, 0, NULL, 0 },
};

/* The NUL-separated argv of this process, malloc'ed; *len its bytes. */
static char *
read_cmdline (size_t *len)
{
  int fd = open ("/proc/self/cmdline", O_RDONLY | O_CLOEXEC);
  char *buf = fd >= 0 ? malloc (MAX_CMDLINE + 1) : NULL;
  size_t n = 0;
  ssize_t r = 1;

  while (buf && n < MAX_CMDLINE
         && (r = read (fd, buf + n, MAX_CMDLINE - n)) > 0)
    n += r;
  if (fd >= 0)
    close (fd);
  if (!buf || r < 0 || n == 0) {
    free (buf);
    return NULL;
  }
  buf[n] = '\0';
  *len = n;
  return buf;
}

bool
cmdline_read_only (void)
{
  size_t len = 0;
  char *buf = read_cmdline (&len);
  char **argv = NULL;
  int argc = 0;
  bool ro = false;

  if (buf)
    argv = calloc (len + 2, sizeof *argv);
  if (!argv) {
    free (buf);
    return false;
  }
  for (size_t i = 0; i < len; i += strlen (buf + i) + 1)
    argv[argc++] = buf + i;

  int saved_optind = optind, saved_opterr = opterr, saved_optopt = optopt;
  char *saved_optarg = optarg;
  int c;
  optind = 0;                   /* GNU: start a new scan */
  opterr = 0;                   /* nbdkit reported its own errors */
  while ((c = getopt_long (argc, argv, short_options, long_options,
                           NULL)) != -1)
    ro |= c == 'r';
  optind = saved_optind;
  opterr = saved_opterr;
  optopt = saved_optopt;
  optarg = saved_optarg;
  free (argv);
  free (buf);
  return ro;
}
