/* remapctl: the client side of the plugin's control socket.
 *
 * Protocol (documented in remapctl.pod, implemented by plugin/control.c):
 * the client connects to the AF_UNIX stream socket, sends ONE request line
 * (the command and its arguments separated by single spaces, at most
 * REMAP_CONTROL_MAX_LINE bytes, ending in "\n"), and reads the response
 * until the server closes the connection.  The response starts with one
 * status line, "OK\n" or "ERR <errno> <message>\n" (errno as a positive
 * decimal number), followed by the command's output.
 */

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include "remapctl.h"

int
ctl_request (const char *sock, int argc, char *const *argv,
             struct remap_buf *out, struct remap_error *err)
{
  struct sockaddr_un sun = { .sun_family = AF_UNIX };
  struct remap_buf req = { 0 }, resp = { 0 };
  char buf[65536];
  int fd, r = 0;

  if (strlen (sock) >= sizeof sun.sun_path)
    return remap_set_error (err, -ENAMETOOLONG, "control socket path %s is "
                            "too long", sock);
  strcpy (sun.sun_path, sock);
  for (int i = 0; i < argc; i++) {
    if (strpbrk (argv[i], " \t\r\n") || argv[i][0] == '\0') {
      remap_buf_free (&req);
      return remap_set_error (err, -EINVAL, "argument \"%s\" cannot be sent "
                              "over the control socket (empty, or holds "
                              "white space)", argv[i]);
    }
    remap_buf_printf (&req, "%s%s", i ? " " : "", argv[i]);
  }
  remap_buf_append (&req, "\n", 1);
  if (req.failed || req.len > REMAP_CONTROL_MAX_LINE) {
    remap_buf_free (&req);
    return remap_set_error (err, -E2BIG, "request too long for the control "
                            "socket");
  }

  fd = socket (AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (fd == -1) {
    r = -errno;
    remap_buf_free (&req);
    return remap_set_error (err, r, "socket: %s", strerror (-r));
  }
  if (connect (fd, (struct sockaddr *) &sun, sizeof sun) == -1) {
    r = -errno;
    remap_set_error (err, -ECONNREFUSED, "cannot connect to control socket "
                     "%s: %s (is nbdkit running with control=%s?)", sock,
                     strerror (-r), sock);
    r = -ECONNREFUSED;
    goto out;
  }
  for (size_t off = 0; off < req.len; ) {
    ssize_t n = send (fd, req.data + off, req.len - off, MSG_NOSIGNAL);
    if (n < 0 && errno == EINTR)
      continue;
    if (n < 0) {
      r = remap_set_error (err, -ECONNRESET, "control socket %s: send: %s",
                           sock, strerror (errno));
      goto out;
    }
    off += (size_t) n;
  }
  shutdown (fd, SHUT_WR);
  for (;;) {
    ssize_t n = read (fd, buf, sizeof buf);
    if (n < 0 && errno == EINTR)
      continue;
    if (n < 0) {
      r = remap_set_error (err, -ECONNRESET, "control socket %s: read: %s",
                           sock, strerror (errno));
      goto out;
    }
    if (n == 0)
      break;
    if (remap_buf_append (&resp, buf, (size_t) n)) {
      r = remap_set_error (err, -ENOMEM, "out of memory");
      goto out;
    }
  }
  {
    char *nl = resp.data ? strchr (resp.data, '\n') : NULL;
    if (!nl) {
      r = remap_set_error (err, -EPROTO, "control socket %s: no response "
                           "(the server closed the connection)", sock);
      goto out;
    }
    *nl = '\0';
    if (strcmp (resp.data, "OK") == 0)
      r = 0;
    else if (strncmp (resp.data, "ERR ", 4) == 0) {
      char *end;
      long e = strtol (resp.data + 4, &end, 10);
      if (e <= 0 || *end != ' ')
        e = EIO, end = resp.data + 3;
      r = remap_set_error (err, (int) -e, "%s", end + 1);
    }
    else {
      r = remap_set_error (err, -EPROTO, "control socket %s: bad response "
                           "\"%.60s\"", sock, resp.data);
      goto out;
    }
    remap_buf_append (out, nl + 1, resp.len - (size_t) (nl + 1 - resp.data));
  }
 out:
  close (fd);
  remap_buf_free (&req);
  remap_buf_free (&resp);
  return r;
}
