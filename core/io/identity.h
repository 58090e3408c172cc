/* remap: what identifies a medium beyond its size (SPEC 2.7), for the
 * file backend (core/io/identity.c) and its tests.
 *
 * Internal to the engine library: the backends fill
 * struct remap_backend.identity with these; the public way to set one is
 * remap_backend_set_identity (backend.h).
 */
#ifndef REMAP_CORE_IO_IDENTITY_H
#define REMAP_CORE_IO_IDENTITY_H

#include <stddef.h>
#include <sys/stat.h>

/* The identity of block device maj:min into out (at least
 * sizeof ((struct remap_backend *) 0)->identity bytes), "" when nothing
 * identifies it.  sysfs and udev are the roots of /sys and /run/udev
 * (NULL: those; tests pass a made-up tree).  Never fails: a file that
 * cannot be read is a source that says nothing. */
void remap_identity_blockdev (const char *sysfs, const char *udev,
                              unsigned maj, unsigned min, char *out);

/* The identity of the regular file open on fd with status st. */
void remap_identity_regular (int fd, const struct stat *st, char *out);

#endif /* REMAP_CORE_IO_IDENTITY_H */
