#!/bin/bash
# test-qemu-io.sh - pattern writes and reads through a real nbdkit + remap.so
# with qemu-io: remapped and plain units, requests that cross units and mix
# the two, unaligned offsets and lengths (once rounded by qemu, once passed
# to the engine as they are), write-zeroes, trim, parallel aio writes; then a
# restart of nbdkit and a full read-back.
#
# Oracle: the same qemu-io commands applied to a plain copy of the origin
# (model.img); the export must equal it byte for byte (qemu-img compare).
# The origin itself must still hold its original bytes at every remapped unit.
#
# Needs: nbdkit, qemu-io, qemu-img, nbdinfo.  Exit 0 pass, 1 fail, 77 skip.

. "$(dirname "$0")/lib/common.sh"
e2e_init test-qemu-io
e2e_require qemu-io qemu-img nbdinfo cmp

U=4096
ORIGIN=$WORK/origin.img
SPARE=$WORK/spare.img
REF=$WORK/original.img
MODEL=$WORK/model.img
REMAPPED="3 10 11 12 100 256 257"

make_file "$ORIGIN" $((16 << 20)) random
make_file "$SPARE" $((8 << 20)) zero
cp "$ORIGIN" "$REF" && cp "$ORIGIN" "$MODEL" || fail "cp"

# run_both CMD...: apply qemu-io commands to the export and to the model.
run_both() {
    qio "$URI" "$@"
    local args=()
    for c in "$@"; do args+=(-c "$c"); done
    qemu-io -f raw "${args[@]}" "$MODEL" >/dev/null 2>&1 || fail "qemu-io on the model"
}

compare_model() {
    local out
    out=$(qemu-img compare -f raw -F raw "$MODEL" "$URI" 2>&1) || {
        printf '%s\n' "$out"
        fail "$1: export differs from the model"
    }
    ok "$1: export equals the model (qemu-img compare, 16 MiB)"
}

# ---- pass 1: format, remap at start, aligned / cross-unit / qemu-rounded ----
log "pass 1: format=yes remap=3,10-12,100 remap=1M+8k (units 256-257)"
start_server p1 "$ORIGIN" spare="$SPARE" format=yes remap=3,10-12,100 remap=1M+8k

info=$(nbdinfo "$URI") || fail "nbdinfo"
for want in "export-size: 16777216" "block_size_minimum: 512" \
            "block_size_preferred: 4096" "can_fua: true" "can_flush: true" \
            "can_multi_conn: true" "can_trim: true" "can_zero: true" \
            "is_read_only: false"; do
    printf '%s\n' "$info" | grep -q "$want" || fail "nbdinfo lacks '$want'"
done
ok "nbdinfo: size, block sizes, fua/flush/multi-conn/trim/zero as designed"

for u in $REMAPPED; do
    s=$(spare_unit_of "$WORK/p1.log" "$u")
    [ -n "$s" ] || fail "no 'remap: unit $u -> spare unit S' line in the log"
done
ok "start-time remaps logged for units $REMAPPED"

run_both \
    "write -P 0xa1 $((3 * U)) $U" \
    "write -P 0xa2 $((4 * U)) $U" \
    "write -P 0xa3 $((9 * U)) $((5 * U))" \
    "write -P 0xa4 $((255 * U)) $((3 * U))" \
    "write -P 0x5a 1000 5000" \
    "write -P 0x5b 409000 1000" \
    "flush"
qio "$URI" \
    "read -P 0xa1 $((3 * U)) $U" \
    "read -P 0xa2 $((4 * U)) $U" \
    "read -P 0xa3 $((9 * U)) $((5 * U))" \
    "read -P 0xa4 $((255 * U)) $((3 * U))" \
    "read -P 0x5a 1000 5000" \
    "read -P 0x5b 409000 1000"
ok "patterns read back: remapped unit, plain unit, units 9-13 (plain|remapped|plain), 255-257, unaligned 1000+5000 and 409000+1000"

# Zero and trim over remapped and plain units (trimmed data is undefined, so
# the trimmed range is rewritten before comparing).
run_both \
    "write -z $((11 * U)) $U" \
    "write -z -u $((5 * U)) $((2 * U))" \
    "write -z 100000 7000" \
    "discard $((20 * U)) $((4 * U))" \
    "write -P 0xd1 $((20 * U)) $((4 * U))"
qio "$URI" "read -P 0 $((11 * U)) $U" "read -P 0 $((5 * U)) $((2 * U))" \
    "read -P 0xd1 $((20 * U)) $((4 * U))"
ok "write-zeroes (plain, remapped, may-trim) and trim"
# A trim of a remapped unit keeps its data (the engine leaves it alone);
# the model is not trimmed, it keeps the data too.
qio "$URI" "discard $((100 * U)) $U" "read -P 0x5b 409600 400"
ok "trim of remapped unit 100 kept its data"
compare_model "pass 1"
stop_server

# ---- pass 2: minimum block size 1, so the engine sees unaligned requests ----
log "pass 2: --filter=blocksize-policy blocksize-minimum=1 (unaligned requests reach the engine)"
E2E_DATAPATH=1 start_server p2 --filter=blocksize-policy -- \
    "$ORIGIN" spare="$SPARE" blocksize-minimum=1
nbdinfo "$URI" | grep -q "block_size_minimum: 1" || fail "blocksize-policy did not apply"
run_both \
    "write -P 0x61 40001 7" \
    "write -P 0x62 49151 2" \
    "write -P 0x63 1048575 4098" \
    "write -P 0x64 3 1" \
    "write -P 0x65 12287 8194" \
    "write -P 0x66 $((16 * 1048576 - 3)) 3" \
    "aio_write -P 0x71 $((300 * U + 1)) 9000" \
    "aio_write -P 0x72 $((10 * U + 17)) 100" \
    "aio_write -P 0x73 $((256 * U + 5)) 5000" \
    "aio_write -P 0x74 $((2000 * U)) 65536" \
    "aio_flush" \
    "write -P 0x67 $((12 * U + 100)) 1 -f"
qio "$URI" \
    "read -P 0x61 40001 7" "read -P 0x62 49151 2" "read -P 0x64 3 1" \
    "read -P 0x66 $((16 * 1048576 - 3)) 3" \
    "read -P 0x71 $((300 * U + 1)) 9000" "read -P 0x73 $((256 * U + 5)) 5000" \
    "read -P 0x74 $((2000 * U)) 65536" "read -P 0x67 $((12 * U + 100)) 1"
grep -q "pwrite count=7 offset=40001" "$WORK/p2.log" &&
    grep -q "pwrite count=2 offset=49151" "$WORK/p2.log" ||
    fail "the unaligned writes did not reach the plugin unchanged"
ok "unaligned single bytes, 2 bytes across remapped units 11|12, 4098 bytes across 255|256|257, last bytes of the disk, parallel aio writes, FUA write"
compare_model "pass 2"
stop_server

# ---- pass 3: a new nbdkit process reads everything back ----------------------
log "pass 3: restart without format= or remap=; the table comes from the spare"
start_server p3 "$ORIGIN" spare="$SPARE"
compare_model "after restart"
qio "$URI" "read -P 0x65 12287 8194" "read -P 0x61 40001 7"
stop_server

for u in $REMAPPED; do
    same_bytes "$ORIGIN" $((u * U)) "$REF" $((u * U)) $U ||
        fail "origin unit $u was written although it is remapped"
done
ok "origin still holds its original bytes at remapped units $REMAPPED"
same_bytes "$ORIGIN" $((4 * U)) "$MODEL" $((4 * U)) $U &&
    same_bytes "$ORIGIN" $((13 * U)) "$MODEL" $((13 * U)) $U ||
    fail "plain units 4 and 13 did not reach the origin"
ok "plain units reached the origin"
E2E_RESULT=0
