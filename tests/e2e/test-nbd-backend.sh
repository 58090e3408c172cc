#!/bin/bash
# test-nbd-backend.sh - origin and spare behind other NBD servers:
#
#   qemu-io -> nbdkit remap.so origin=nbd+unix://...o.sock spare=nbd+unix://...s.sock
#                 |                         |
#          nbdkit memory 32M         nbdkit memory 8M
#
# The origin export is filled with random data, units 5 and 100-101 are
# remapped at start, patterns are written over them and over plain units,
# the export must equal a local model; remap.so is restarted (the memory
# servers keep running, so the table survives on the spare export) and read
# back; finally both exports are read directly: the bad units' data is on
# the spare export at the logged spare units, and the origin export still
# holds the old bytes there.
#
# Needs: nbdkit (memory plugin), qemu-io, qemu-img, nbdcopy, and a remap
# built with libnbd (else skip).  Exit 0 pass, 1 fail, 77 skip.

. "$(dirname "$0")/lib/common.sh"
e2e_init test-nbd-backend
e2e_require qemu-io qemu-img nbdcopy cmp
nbdkit "$PLUGIN" --dump-plugin | grep -q '^remap_nbd_backend=yes' ||
    skip "remap was built without libnbd (remap_nbd_backend=no)"

U=4096
MODEL=$WORK/model.img
make_file "$MODEL" $((32 << 20)) random
cp "$MODEL" "$WORK/original.img" || fail "cp"

start_nbdkit origin memory 32M
ORIGIN_URI=$URI ORIGIN_PID=$SERVER_PID
start_nbdkit spare memory 8M
SPARE_URI=$URI SPARE_PID=$SERVER_PID
nbdcopy "$MODEL" "$ORIGIN_URI" || fail "filling the origin export"
ok "origin export (nbdkit memory 32M) filled with random data; spare export: nbdkit memory 8M"

start_server r1 origin="$ORIGIN_URI" spare="$SPARE_URI" format=yes remap=5,100-101
W=(
    "write -P 0xe5 $((5 * U)) $U"
    "write -P 0xe6 $((99 * U + 100)) $((2 * U))"
    "write -P 0xe7 $((7 * U)) 1000"
    "flush"
)
args=()
for c in "${W[@]}"; do args+=(-c "$c"); done
qio "$URI" "${W[@]}"
qemu-io -f raw "${args[@]}" "$MODEL" >/dev/null || fail "qemu-io on the model"
qemu-img compare -f raw -F raw "$MODEL" "$URI" >/dev/null || fail "export differs from the model"
ok "writes over remapped units 5, 100-101 and plain units 7, 99 read back; export equals the model"
for u in 5 100 101; do
    s=$(spare_unit_of "$WORK/r1.log" $u)
    [ -n "$s" ] || fail "spare unit of $u not logged"
    eval "S$u=$s"
done
stop_server

start_server r2 origin="$ORIGIN_URI" spare="$SPARE_URI"
qemu-img compare -f raw -F raw "$MODEL" "$URI" >/dev/null || fail "export differs after restart"
ok "restart: the table was read back from the spare export; export equals the model"
stop_server

nbdcopy "$ORIGIN_URI" "$WORK/origin-now.img" || fail "reading the origin export"
nbdcopy "$SPARE_URI" "$WORK/spare-now.img" || fail "reading the spare export"
for u in 5 100 101; do
    same_bytes "$WORK/origin-now.img" $((u * U)) "$WORK/original.img" $((u * U)) $U ||
        fail "origin export unit $u was written although remapped"
done
ok "origin export still holds the old bytes at units 5, 100, 101"
pattern_file "$WORK/e5" 0xe5 $U
same_bytes "$WORK/spare-now.img" $((S5 * U)) "$WORK/e5" 0 $U ||
    fail "spare export unit $S5 does not hold unit 5's data"
same_bytes "$WORK/spare-now.img" $((S100 * U)) "$MODEL" $((100 * U)) $U &&
    same_bytes "$WORK/spare-now.img" $((S101 * U)) "$MODEL" $((101 * U)) $U ||
    fail "spare export units $S100/$S101 do not hold units 100/101"
ok "spare export holds units 5, 100, 101 at spare units $S5, $S100, $S101"
stop_server "$SPARE_PID"
stop_server "$ORIGIN_PID"
E2E_RESULT=0
