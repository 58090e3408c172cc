/* remap plugin: rehearsal, a simulated failing origin (SPEC 4.4).
 *
 * What dm-dust and dm-flakey give kernel users, for any origin: the origin
 * backend is wrapped in the engine's fault injector, and chosen byte ranges
 * fail reads, writes or both, always or from the N-th access, for a number
 * of times or forever:
 *
 *   fail=write:40960+4096            every write touching unit 10 (4 KiB)
 *   fail=read:1m+8k,after=3          reads from the 4th on
 *   fail-file=/run/remap-faults      the same syntax, one rule per line,
 *                                    re-read whenever the file changes
 *
 * The rule file is the run-time switch: a thread started in .after_fork
 * polls its mtime, size and inode every POLL_MS; when they change it is
 * parsed and the rule set (fail= rules + the file's) replaced atomically;
 * a file that does not parse is reported and the old rules kept; a missing
 * file means no rules from it (delete it to heal the disk).  The engine
 * never knows: it sees an origin that fails, as it would a real one.
 */
#include <errno.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#define NBDKIT_API_VERSION 2
#include <nbdkit-plugin.h>

#include "rehearse.h"

#define POLL_MS 100
#define MAX_FILE (64 * 1024)

static struct remap_fault_rule cmdline[REMAP_FAULT_MAX_RULES];
static size_t ncmdline;
static char *file_path;
static struct remap_backend *fault;     /* the wrapper, owned by the engine */

static pthread_t watcher;
static bool watching;
static pthread_mutex_t stop_lock = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t stop_cond = PTHREAD_COND_INITIALIZER;
static bool stop;

struct stamp {
  bool exists;
  dev_t dev;
  ino_t ino;
  off_t size;
  struct timespec mtime;
};

static struct stamp last;

int
rehearse_config (const char *key, const char *value)
{
  struct remap_error err = { 0 };

  if (strcmp (key, "fail") == 0) {
    if (ncmdline == REMAP_FAULT_MAX_RULES) {
      nbdkit_error ("fail=: at most %d rules", REMAP_FAULT_MAX_RULES);
      return -1;
    }
    if (remap_fault_parse_rule (value, &cmdline[ncmdline], &err) < 0) {
      nbdkit_error ("fail=%s: %s", value, err.msg);
      return -1;
    }
    ncmdline++;
    return 1;
  }
  if (strcmp (key, "fail-file") == 0) {
    if (file_path) {
      nbdkit_error ("fail-file= given twice");
      return -1;
    }
    /* May not exist yet: absolute, not real, path. */
    file_path = nbdkit_absolute_path (value);
    return file_path ? 1 : -1;
  }
  return 0;
}

static struct stamp
stamp_of (const char *path)
{
  struct stamp s = { 0 };
  struct stat st;
  if (stat (path, &st) == 0) {
    s.exists = true;
    s.dev = st.st_dev;
    s.ino = st.st_ino;
    s.size = st.st_size;
    s.mtime = st.st_mtim;
  }
  return s;
}

static bool
same (const struct stamp *a, const struct stamp *b)
{
  return a->exists == b->exists && a->dev == b->dev && a->ino == b->ino
    && a->size == b->size && a->mtime.tv_sec == b->mtime.tv_sec
    && a->mtime.tv_nsec == b->mtime.tv_nsec;
}

/* Read and parse the rule file into rules[ncmdline..]; *n = total. */
static int
load_file (struct remap_fault_rule *rules, size_t *n)
{
  struct remap_fault_rule frules[REMAP_FAULT_MAX_RULES];
  struct remap_error err = { 0 };
  size_t nf = 0;

  memcpy (rules, cmdline, ncmdline * sizeof *rules);
  *n = ncmdline;
  if (!file_path)
    return 0;
  FILE *fp = fopen (file_path, "re");
  if (!fp) {
    if (errno == ENOENT)
      return 0;
    nbdkit_error ("fail-file=%s: %m", file_path);
    return -1;
  }
  char *text = malloc (MAX_FILE + 1);
  size_t len = text ? fread (text, 1, MAX_FILE, fp) : 0;
  bool toolong = text && !feof (fp);
  fclose (fp);
  if (!text || toolong) {
    nbdkit_error ("fail-file=%s: %s", file_path,
                  text ? "larger than 64 KiB" : "out of memory");
    free (text);
    return -1;
  }
  text[len] = '\0';
  int r = remap_fault_parse_rules (text, len, file_path, frules, &nf, &err);
  free (text);
  if (r < 0) {
    nbdkit_error ("fail-file=%s", err.msg);
    return -1;
  }
  if (ncmdline + nf > REMAP_FAULT_MAX_RULES) {
    nbdkit_error ("fail-file=%s: more than %d rules with fail=", file_path,
                  REMAP_FAULT_MAX_RULES);
    return -1;
  }
  memcpy (rules + ncmdline, frules, nf * sizeof *rules);
  *n = ncmdline + nf;
  return 0;
}

static int
apply (void)
{
  struct remap_fault_rule rules[REMAP_FAULT_MAX_RULES];
  size_t n;
  if (load_file (rules, &n) < 0)
    return -1;
  if (remap_fault_set_rules (fault, rules, n) < 0) {
    nbdkit_error ("rehearsal: the rules were refused");
    return -1;
  }
  nbdkit_debug ("remap: rehearsal: %zu rule(s) active", n);
  return 0;
}

int
rehearse_wrap (struct remap_backend **origin)
{
  if (ncmdline == 0 && !file_path)
    return 0;
  if (remap_fault_create (*origin, true, &fault) < 0) {
    nbdkit_error ("rehearsal: out of memory");
    remap_backend_close (*origin);
    *origin = NULL;
    return -1;
  }
  if (file_path)
    last = stamp_of (file_path);
  if (apply () < 0) {
    remap_backend_close (fault);
    fault = NULL;
    *origin = NULL;
    return -1;
  }
  *origin = fault;
  return 0;
}

static void *
watch (void *arg)
{
  (void) arg;
  pthread_mutex_lock (&stop_lock);
  while (!stop) {
    struct timespec t;
    clock_gettime (CLOCK_REALTIME, &t);
    t.tv_nsec += POLL_MS * 1000000L;
    if (t.tv_nsec >= 1000000000L) {
      t.tv_sec++;
      t.tv_nsec -= 1000000000L;
    }
    pthread_cond_timedwait (&stop_cond, &stop_lock, &t);
    if (stop)
      break;
    struct stamp now = stamp_of (file_path);
    if (!same (&now, &last)) {
      last = now;
      apply ();                 /* keeps the old rules on error */
    }
  }
  pthread_mutex_unlock (&stop_lock);
  return NULL;
}

int
rehearse_start (void)
{
  if (!fault || !file_path)
    return 0;
  stop = false;
  int e = pthread_create (&watcher, NULL, watch, NULL);
  if (e) {
    nbdkit_error ("rehearsal: cannot start the fail-file watcher: %s",
                  strerror (e));
    return -1;
  }
  watching = true;
  return 0;
}

void
rehearse_stop (void)
{
  if (watching) {
    pthread_mutex_lock (&stop_lock);
    stop = true;
    pthread_cond_signal (&stop_cond);
    pthread_mutex_unlock (&stop_lock);
    pthread_join (watcher, NULL);
    watching = false;
  }
  fault = NULL;                 /* closed by the engine */
}
