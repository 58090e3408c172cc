#!/bin/bash
# test-copy.sh - bulk copies through remap.so with several real clients:
#   - qemu-img convert of a random image into the export, qemu-img compare;
#   - nbdcopy file -> export (multi-conn) and export -> file, cmp, including
#     a sparse source (its holes become zero requests);
#   - fio --ioengine=nbd with 4 jobs (4 connections), iodepth 8, block sizes
#     512 B..64 KiB that straddle units, crc32c verification, then a second
#     verify-only pass on a restarted nbdkit.
# Remapped units are scattered over the whole disk (first, last, runs).
#
# Needs: nbdkit, qemu-img, nbdcopy, fio (the fio part is skipped, not
# failed, if fio lacks the nbd engine).  Exit 0 pass, 1 fail, 77 skip.

. "$(dirname "$0")/lib/common.sh"
e2e_init test-copy
e2e_require qemu-img nbdcopy nbdinfo cmp

SIZE=$((64 << 20))
ORIGIN=$WORK/origin.img
SPARE=$WORK/spare.img
LIST=0,1,7,100-103,4095-4097,5000,8191,12000-12015,16383

make_file "$ORIGIN" $SIZE zero
make_file "$SPARE" $((8 << 20)) zero
make_file "$WORK/rand1.img" $SIZE random
make_file "$WORK/rand2.img" $SIZE random
# A sparse source: data islands in a hole-filled file.
make_file "$WORK/sparse.img" $SIZE zero
for off in 0 4096000 16777216 50000000 67000000; do
    head -c 70000 /dev/urandom |
        dd of="$WORK/sparse.img" oflag=seek_bytes seek=$off conv=notrunc \
           iflag=fullblock bs=64k status=none || fail "dd into sparse.img"
done
[ "$(stat -c %s "$WORK/sparse.img")" = $SIZE ] || fail "sparse image has the wrong size"

log "starting nbdkit: 64 MiB origin, 8 MiB spare, remap=$LIST"
start_server c1 "$ORIGIN" spare="$SPARE" format=yes remap=$LIST

log "qemu-img convert rand1.img -> export"
qemu-img convert -n -f raw -O raw "$WORK/rand1.img" "$URI" || fail "qemu-img convert"
qemu-img compare -f raw -F raw "$WORK/rand1.img" "$URI" >/dev/null || fail "qemu-img compare after convert"
ok "qemu-img convert + compare"

log "nbdcopy rand2.img -> export (multi-conn), export -> out2.img"
nbdcopy --flush "$WORK/rand2.img" "$URI" || fail "nbdcopy to the export"
nbdcopy "$URI" "$WORK/out2.img" || fail "nbdcopy from the export"
cmp "$WORK/rand2.img" "$WORK/out2.img" || fail "nbdcopy round trip differs"
ok "nbdcopy both ways, cmp equal"

log "nbdcopy sparse.img -> export (holes become zero requests)"
nbdcopy --flush "$WORK/sparse.img" "$URI" || fail "nbdcopy sparse to the export"
nbdcopy "$URI" "$WORK/out3.img" || fail "nbdcopy sparse from the export"
cmp "$WORK/sparse.img" "$WORK/out3.img" || fail "sparse round trip differs"
ok "nbdcopy of a sparse image, cmp equal"

# The remapped units hold what the client wrote; the origin does not.
u=12000
same_bytes "$WORK/out3.img" $((u * 4096)) "$WORK/sparse.img" $((u * 4096)) 4096 || fail "unit $u"
cmp -s -n 4096 -i $((u * 4096)):0 "$ORIGIN" /dev/zero || fail "origin unit $u was written"
ok "origin unit $u (remapped) never written"

FIO_OK=1
if ! command -v fio >/dev/null 2>&1; then
    log "fio not installed: skipping the fio part"; FIO_OK=0
elif ! fio --enghelp=nbd >/dev/null 2>&1; then
    log "fio has no nbd engine: skipping the fio part"; FIO_OK=0
fi
FIO_ARGS=(--ioengine=nbd --uri="$URI" --rw=randwrite --bsrange=512-64k
          --iodepth=8 --numjobs=4 --size=16m --offset_increment=16m
          --verify=crc32c --verify_fatal=1 --randseed=4242 --group_reporting)
if [ "$FIO_OK" = 1 ]; then
    log "fio: 4 jobs x 16 MiB, random writes 512 B..64 KiB, iodepth 8, crc32c verify"
    # fio leaves its verify state files in the current directory: use $WORK.
    (cd "$WORK" && fio --name=remap "${FIO_ARGS[@]}" --output="$WORK/fio.log") ||
        fail "fio write+verify"
    grep -q "err= 0" "$WORK/fio.log" || fail "fio reported errors"
    ok "fio write + verify"
fi
stop_server

log "restart nbdkit; data must survive"
start_server c2 "$ORIGIN" spare="$SPARE"
if [ "$FIO_OK" = 1 ]; then
    # Same seed and layout: fio recomputes the same blocks and checks them.
    (cd "$WORK" && fio --name=remap "${FIO_ARGS[@]/--uri=*/--uri=$URI}" --verify_only \
        --output="$WORK/fio2.log") || fail "fio verify-only after restart"
    grep -q "err= 0" "$WORK/fio2.log" || fail "fio verify-only reported errors"
    ok "fio verify-only after restart"
else
    nbdcopy "$URI" "$WORK/out4.img" || fail "nbdcopy after restart"
    cmp "$WORK/sparse.img" "$WORK/out4.img" || fail "data changed across restart"
    ok "nbdcopy after restart equals the last image written"
fi
nbdinfo --can multi-conn "$URI" || fail "multi-conn not advertised"
stop_server
E2E_RESULT=0
