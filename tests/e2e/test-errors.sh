#!/bin/bash
# test-errors.sh - a failing origin, end to end, and what clients see.
#
# The origin is an NBD export of `nbdkit --filter=error memory', whose
# writes (or reads) fail while a trigger file exists; the spare is a small
# file (36 KiB: 5 usable units of 4 KiB).
#
#   A. origin writes fail: writes (whole unit, partial unit) still succeed
#      for the client; the data went to the spare (the origin export keeps
#      the old bytes) and reads it back after the origin heals;
#   B. origin reads fail: the client gets EIO (never EINVAL);
#   C. the spare fills up: the write that cannot be remapped fails with
#      ENOSPC, while reads and writes of remapped units keep working; after
#      a restart with enospc=eio the same situation gives EIO; the counters
#      logged at exit show the events.
#
# Needs: nbdkit (memory plugin, error filter), qemu-io, nbdcopy, and a
# remap built with libnbd (else skip).  Exit 0 pass, 1 fail, 77 skip.

. "$(dirname "$0")/lib/common.sh"
e2e_init test-errors
e2e_require qemu-io nbdcopy cmp
nbdkit "$PLUGIN" --dump-plugin | grep -q '^remap_nbd_backend=yes' ||
    skip "remap was built without libnbd (remap_nbd_backend=no)"

U=4096
WFAIL=$WORK/origin-write-fails
RFAIL=$WORK/origin-read-fails
make_file "$WORK/original.img" $((4 << 20)) random
make_file "$WORK/spare.img" $((36 << 10)) zero

start_nbdkit origin --filter=error memory 4M \
    error-pwrite-rate=100% error-pwrite-file="$WFAIL" \
    error-pread-rate=100% error-pread-file="$RFAIL"
ORIGIN_URI=$URI ORIGIN_PID=$SERVER_PID
nbdcopy "$WORK/original.img" "$ORIGIN_URI" || fail "filling the origin export"

start_server r1 origin="$ORIGIN_URI" spare="$WORK/spare.img" format=yes read-retries=1 read-retry-delay=1

# ---- A. write errors on the origin are remapped, invisibly -----------------------
touch "$WFAIL"
qio "$URI" "write -P 0x11 $((1 * U)) $U" "write -P 0x12 $((2 * U + 100)) 200" "flush"
ok "A: writes to units 1 and 2 (partial) succeeded although every origin write fails"
rm -f "$WFAIL"
qio "$URI" "read -P 0x11 $((1 * U)) $U" "read -P 0x12 $((2 * U + 100)) 200"
nbdcopy "$ORIGIN_URI" "$WORK/origin-now.img" || fail "reading the origin export"
same_bytes "$WORK/origin-now.img" $U "$WORK/original.img" $U $((2 * U)) ||
    fail "A: the origin export was changed at units 1-2"
nbdcopy "$URI" "$WORK/export.img" || fail "reading the export"
same_bytes "$WORK/export.img" $((2 * U)) "$WORK/original.img" $((2 * U)) 100 &&
    same_bytes "$WORK/export.img" $((2 * U + 300)) "$WORK/original.img" $((2 * U + 300)) $((U - 300)) ||
    fail "A: the rest of partially written unit 2 is not the origin's old data"
ok "A: data read back from the spare; origin export unchanged; unit 2 kept its old bytes around the write"

# ---- B. read errors reach the client as EIO -------------------------------------------
touch "$RFAIL"
qio_fails "$URI" "Input/output error" "read $((7 * U)) $U"
rm -f "$RFAIL"
ok "B: a failing origin read gives the client EIO"

# ---- C. spare exhaustion ---------------------------------------------------------------
touch "$WFAIL"
n=0
for u in 10 11 12 13 14 15; do
    out=$(qemu-io -f raw -c "write -P 0x33 $((u * U)) $U" "$URI" 2>&1)
    if printf '%s\n' "$out" | grep -q "No space left on device"; then break; fi
    printf '%s\n' "$out" | grep -q "^wrote" || { printf '%s\n' "$out"; fail "C: write to unit $u: unexpected result"; }
    n=$((n + 1))
done
[ "$u" != 15 ] || [ "$n" -lt 6 ] || fail "C: the spare never filled"
ok "C: $n more writes remapped, then the write to unit $u failed with ENOSPC"
qio "$URI" "read -P 0x11 $((1 * U)) $U" "write -P 0x44 $((1 * U)) $U" "read -P 0x44 $((1 * U)) $U"
ok "C: with the spare full, a remapped unit can still be read and rewritten"
rm -f "$WFAIL"
qio "$URI" "write -P 0x55 $((u * U)) $U" "read -P 0x55 $((u * U)) $U"
ok "C: once the origin heals, the unit that could not be remapped is written to the origin"
stop_server
grep -Eq "remap: exit: .*write_errors=[1-9].* enospc=[1-9]" "$WORK/r1.log" ||
    fail "C: counters at exit lack write_errors/enospc: $(grep 'remap: exit:' "$WORK/r1.log")"
ok "C: counters at exit: $(sed -n 's/.*remap: exit: //p' "$WORK/r1.log" | cut -c1-120)"

start_server r2 origin="$ORIGIN_URI" spare="$WORK/spare.img" enospc=eio
touch "$WFAIL"
qio_fails "$URI" "Input/output error" "write -P 0x66 $((30 * U)) $U"
rm -f "$WFAIL"
ok "C: with enospc=eio the same exhaustion gives EIO"
stop_server
stop_server "$ORIGIN_PID"
E2E_RESULT=0
