/* remap: knobs that only tests turn (tests/unit/test_uring.c).
 *
 * Each is a plain global of the engine library, 0 in normal use: nothing
 * outside the tests sets it, and with -fvisibility=hidden it is not even
 * visible outside the library (the plugin does not export it).  A test sets
 * it before the call it wants to disturb; the library counts it down.
 */
#ifndef REMAP_CORE_IO_TESTHOOKS_H
#define REMAP_CORE_IO_TESTHOOKS_H

/* core/io/uring.c: the next N waits for io_uring completions fail with
 * -EINTR, as if a signal had cut them short (the kernel still owns the
 * transfers in flight).  Read and decremented atomically. */
extern int remap_uring_test_failed_waits;

#endif /* REMAP_CORE_IO_TESTHOOKS_H */
