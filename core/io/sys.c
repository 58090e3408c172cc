/* remap: the few things the engine needs from the system.
 *
 * core/ is libc-only and never makes a system call; what needs one (random
 * bytes for a uuid, the clock) lives here, under core/io/.
 *
 * remap_format_opts_init fills the defaults for remap_format: a random
 * RFC 4122 version 4 uuid from getrandom(2) (with /dev/urandom, then a
 * time-and-address mix as fallbacks, so it never leaves the uuid all zero)
 * and the current time.
 */

#include <errno.h>
#include <fcntl.h>
#include <stdint.h>
#include <string.h>
#include <sys/random.h>
#include <time.h>
#include <unistd.h>

#include "remap/remap.h"

static int
urandom_bytes (uint8_t *buf, size_t len)
{
  size_t done = 0;
  int fd = open ("/dev/urandom", O_RDONLY | O_CLOEXEC);

  if (fd == -1)
    return -1;
  while (done < len) {
    ssize_t r = read (fd, buf + done, len - done);

    if (r < 0 && errno == EINTR)
      continue;
    if (r <= 0)
      break;
    done += r;
  }
  close (fd);
  return done == len ? 0 : -1;
}

/* Last resort: not random, but distinct enough to name one spare. */
static void
weak_bytes (uint8_t *buf, size_t len)
{
  struct timespec ts;
  uint64_t x;
  size_t i;

  clock_gettime (CLOCK_REALTIME, &ts);
  x = (uint64_t) ts.tv_sec * 1000000000u + ts.tv_nsec;
  x ^= (uint64_t) getpid () << 32 ^ (uint64_t) (uintptr_t) buf;
  for (i = 0; i < len; i++) {
    x ^= x << 13;
    x ^= x >> 7;
    x ^= x << 17;
    buf[i] = x >> 24;
  }
}

static void
random_bytes (uint8_t *buf, size_t len)
{
  size_t done = 0;

  while (done < len) {
    ssize_t r = getrandom (buf + done, len - done, 0);

    if (r < 0 && errno == EINTR)
      continue;
    if (r <= 0)
      break;
    done += r;
  }
  if (done == len)
    return;
  if (urandom_bytes (buf, len) == 0)
    return;
  weak_bytes (buf, len);
}

void
remap_format_opts_init (struct remap_format_opts *opts)
{
  memset (opts, 0, sizeof *opts);
  opts->unit = REMAP_DEFAULT_UNIT;
  opts->strategy = REMAP_STRATEGY_AUTO;
  opts->copies = 0;
  random_bytes (opts->uuid, sizeof opts->uuid);
  opts->uuid[6] = (opts->uuid[6] & 0x0f) | 0x40; /* version 4 */
  opts->uuid[8] = (opts->uuid[8] & 0x3f) | 0x80; /* RFC 4122 variant */
  opts->format_time = (uint64_t) time (NULL);
}
