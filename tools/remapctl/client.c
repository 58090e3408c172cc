/* remapctl: a request over the control socket into a memory buffer (the
 * protocol and the streaming client are the admin library's,
 * admin/client.c). */

#include "remapctl.h"

int
ctl_request (const char *sock, int argc, char *const *argv,
             struct remap_buf *out, struct remap_error *err)
{
  struct remap_out o;
  int r;

  remap_out_memory (&o, out);
  r = remap_ctl_request (sock, argc, argv, &o, err);
  remap_out_finish (&o);
  return r;
}
