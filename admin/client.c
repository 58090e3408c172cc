/* remap admin: the client side of the control socket (protocol in
 * admin.h and remapctl.pod).  The reply is read frame by frame into the
 * caller's sink, so the client's memory does not grow with the reply
 * either.
 */

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include "admin.h"
#include "remap/parse.h"

struct reader {
  int fd;
  char buf[65536];
  size_t pos, len;
};

/* Up to n bytes; 0 at end of stream, -errno on error. */
static ssize_t
fill (struct reader *rd)
{
  for (;;) {
    ssize_t n = read (rd->fd, rd->buf, sizeof rd->buf);
    if (n < 0 && errno == EINTR)
      continue;
    if (n < 0)
      return -errno;
    rd->pos = 0;
    rd->len = (size_t) n;
    return n;
  }
}

/* One line (without its "\n") into line; 1, 0 at a clean end of stream
 * before any byte, -EPROTO for a line too long or cut short. */
static int
read_line (struct reader *rd, char *line, size_t max)
{
  size_t n = 0;

  for (;;) {
    if (rd->pos == rd->len) {
      ssize_t r = fill (rd);
      if (r < 0)
        return (int) r;
      if (r == 0)
        return n == 0 ? 0 : -EPROTO;
    }
    char c = rd->buf[rd->pos++];
    if (c == '\n') {
      line[n] = '\0';
      return 1;
    }
    if (n + 1 == max)
      return -EPROTO;
    line[n++] = c;
  }
}

/* n bytes of data into out. */
static int
read_data (struct reader *rd, size_t n, struct remap_out *out)
{
  while (n) {
    if (rd->pos == rd->len) {
      ssize_t r = fill (rd);
      if (r < 0)
        return (int) r;
      if (r == 0)
        return -EPROTO;
    }
    size_t k = rd->len - rd->pos < n ? rd->len - rd->pos : n;
    remap_out_write (out, rd->buf + rd->pos, k);
    rd->pos += k;
    n -= k;
  }
  return 0;
}

static int
build_request (const char *path, int argc, char *const *argv,
               struct remap_buf *req, struct remap_error *err)
{
  for (int i = 0; i < argc; i++) {
    if (argv[i][0] == '\0' || strpbrk (argv[i], " \t\r\n"))
      return remap_set_error (err, -EINVAL, "argument \"%.40s\" cannot be "
                              "sent over the control socket %s (it is empty "
                              "or holds white space)", argv[i], path);
    remap_buf_printf (req, "%s%s", i ? " " : "", argv[i]);
  }
  remap_buf_append (req, "\n", 1);
  if (req->failed || req->len > REMAP_CONTROL_MAX_LINE)
    return remap_set_error (err, -E2BIG, "request too long for the control "
                            "socket (at most %u bytes)",
                            REMAP_CONTROL_MAX_LINE);
  return 0;
}

/* The reply: frames, then the status line. */
static int
read_reply (const char *path, struct reader *rd, struct remap_out *out,
            struct remap_error *err)
{
  char line[REMAP_ERROR_MSG_MAX + 64];

  for (;;) {
    int r = read_line (rd, line, sizeof line);
    if (r == 0 || r == -EPROTO)
      return remap_set_error (err, -ECONNRESET, "control socket %s: the "
                              "connection closed before the end of the reply "
                              "(did the server stop?)", path);
    if (r < 0)
      return remap_set_error (err, -ECONNRESET, "control socket %s: read: "
                              "%s", path, strerror (-r));
    if (strcmp (line, "OK") == 0)
      return 0;
    if (strncmp (line, "ERR ", 4) == 0) {
      const char *end = line + 4;
      uint64_t e = 0;
      if (remap_scan_u64 (&end, line + strlen (line), 0, &e) != 0
          || e == 0 || e > 4095 || *end != ' ')
        return remap_set_error (err, -EPROTO, "control socket %s: bad "
                                "status line \"%.60s\"", path, line);
      return remap_set_error (err, (int) -e, "%s", end + 1);
    }
    if (line[0] == 'D' && line[1] == ' ') {
      uint64_t n = 0;
      if (remap_parse_u64 (line + 2, 0, "frame", &n, NULL) != 0
          || n == 0 || n > REMAP_OUT_CHUNK)
        return remap_set_error (err, -EPROTO, "control socket %s: bad "
                                "frame \"%.60s\"", path, line);
      if ((r = read_data (rd, (size_t) n, out)) != 0)
        return remap_set_error (err, r == -EPROTO ? -ECONNRESET : r,
                                "control socket %s: the reply was cut short",
                                path);
      continue;
    }
    return remap_set_error (err, -EPROTO, "control socket %s: bad reply "
                            "\"%.60s\" (is this a remap control socket?)",
                            path, line);
  }
}

int
remap_ctl_request (const char *path, int argc, char *const *argv,
                   struct remap_out *out, struct remap_error *err)
{
  struct sockaddr_un sun = { .sun_family = AF_UNIX };
  struct remap_buf req = { 0 };
  struct reader *rd = NULL;
  int fd = -1, r;

  if (strlen (path) >= sizeof sun.sun_path)
    return remap_set_error (err, -ENAMETOOLONG, "control socket path %s is "
                            "too long", path);
  strcpy (sun.sun_path, path);
  if ((r = build_request (path, argc, argv, &req, err)) != 0)
    goto out;
  fd = socket (AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (fd == -1) {
    r = remap_set_error (err, -errno, "socket: %s", strerror (errno));
    goto out;
  }
  if (connect (fd, (struct sockaddr *) &sun, sizeof sun) == -1) {
    r = remap_set_error (err, -ECONNREFUSED, "cannot connect to the control "
                         "socket %s: %s (is nbdkit running with control=%s?)",
                         path, strerror (errno), path);
    goto out;
  }
  /* A server that refuses the connection (busy) answers and closes
   * without reading the request: a failed send is reported only if no
   * answer can be read either. */
  int send_err = 0;
  for (size_t off = 0; off < req.len; ) {
    ssize_t n = send (fd, req.data + off, req.len - off, MSG_NOSIGNAL);
    if (n < 0 && errno == EINTR)
      continue;
    if (n < 0) {
      send_err = errno;
      break;
    }
    off += (size_t) n;
  }
  shutdown (fd, SHUT_WR);
  rd = malloc (sizeof *rd);
  if (!rd) {
    r = remap_set_error (err, -ENOMEM, "out of memory");
    goto out;
  }
  rd->fd = fd;
  rd->pos = rd->len = 0;
  r = read_reply (path, rd, out, err);
  if (send_err && r == -ECONNRESET) {
    remap_error_clear (err);
    r = remap_set_error (err, -ECONNRESET, "control socket %s: send: %s",
                         path, strerror (send_err));
  }
 out:
  free (rd);
  if (fd >= 0)
    close (fd);
  remap_buf_free (&req);
  return r;
}
