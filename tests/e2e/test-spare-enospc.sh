#!/bin/bash
# test-spare-enospc.sh - a spare that runs out of host space (SPEC 3.6,
# 3.10, docs/ERRORS.md).
#
# The spare is an NBD export (nbdkit memory + the error filter) whose
# writes fail with ENOSPC while a trigger file exists: what a sparse spare
# file meets when its file system fills up.  The origin (rehearsal) fails
# writes to units 20-27 with EIO, so writing them needs remaps.  While the
# spare has no room, each such write must fail with ENOSPC at the client,
# no spare unit may be marked BAD, and nothing may be remapped; reads and
# writes of healthy units go on, and so does FLUSH.  Once space returns the
# same writes succeed, are remapped, and read back after a restart.
#
# Needs: nbdkit (memory plugin, error filter), qemu-io, and a remap built
# with libnbd (else skip).  Exit 0 pass, 1 fail, 77 skip.

. "$(dirname "$0")/lib/common.sh"
e2e_init test-spare-enospc
e2e_require qemu-io cmp
nbdkit "$PLUGIN" --dump-plugin | grep -q '^remap_nbd_backend=yes' ||
    skip "remap was built without libnbd (remap_nbd_backend=no)"

U=4096
ORIGIN=$WORK/origin.img
FULL=$WORK/host-is-full
make_file "$ORIGIN" $((4 << 20)) random
cp "$ORIGIN" "$WORK/original.img"
exit_counters() { sed -n 's/.*remap: exit: //p' "$1" | tail -n 1; }

start_nbdkit spare --filter=error memory 1M \
    error-pwrite=ENOSPC error-pwrite-rate=100% error-pwrite-file="$FULL" \
    error-zero=ENOSPC error-zero-rate=100% error-zero-file="$FULL"
SPARE_URI=$URI

rules=()
for u in 20 21 22 23 24 25 26 27; do rules+=("fail=write:$((u * U))+$U"); done
start_server r1 origin="$ORIGIN" spare="$SPARE_URI" format=yes "${rules[@]}"

touch "$FULL"
for u in 20 21 22 23 24 25 26 27; do
    qio_fails "$URI" "No space left on device" "write -P 0x71 $((u * U)) $U"
done
ok "8 writes that needed a remap failed with ENOSPC while the spare had no room"
qio "$URI" "write -P 0x72 $((30 * U)) $U" "read -P 0x72 $((30 * U)) $U" \
    "read $((20 * U)) $((8 * U))" "flush"
ok "healthy units are written and read, and FLUSH succeeds (no flush failed)"
same_bytes "$ORIGIN" $((20 * U)) "$WORK/original.img" $((20 * U)) $((8 * U)) ||
    fail "the origin's failing units were changed"

rm -f "$FULL"
for u in 20 21 22 23 24 25 26 27; do
    qio "$URI" "write -P 0x73 $((u * U)) $U"
done
qio "$URI" "read -P 0x73 $((20 * U)) $((8 * U))" "flush"
ok "space is back: the same 8 writes succeed and read back"
stop_server
c=$(exit_counters "$WORK/r1.log")
case "$c" in
    "reallocated=8 events=8 pending=0 uncorrectable=0 "*" spare_bad=0 "*) ;;
    *) fail "expected 8 remaps and no BAD spare unit: $c" ;;
esac
ok "at exit: $(printf '%s' "$c" | cut -c1-90)"

start_server r2 origin="$ORIGIN" spare="$SPARE_URI" "${rules[@]}"
qio "$URI" "read -P 0x73 $((20 * U)) $((8 * U))" "read -P 0x72 $((30 * U)) $U"
stop_server
c=$(exit_counters "$WORK/r2.log")
case "$c" in
    "reallocated=8 "*" spare_bad=0 "*) ;;
    *) fail "after a restart: $c" ;;
esac
ok "after a restart: the data reads back, 8 units remapped, none BAD"
E2E_RESULT=0
