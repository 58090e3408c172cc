#!/bin/bash
# test-spare-data.sh - the data of a remapped unit really lives on the spare,
# at the spare unit the plugin allocated, and the origin's bad unit is never
# written.  Checked by reading both files directly (dd/cmp), for three spare
# geometries: 4 KiB units on an 8 MiB spare (geometric placement), 512-byte
# units on a 1 MiB spare with 3 linear copies, 16 KiB units on a 256 KiB
# spare (minimal placement).
#
# Also: a partial write to a remapped unit keeps the rest of the unit's old
# data (copied from the origin at remap time); a restart finds the mapping
# again (remap= of an already remapped unit is a no-op).
#
# Needs: nbdkit, qemu-io.  Exit 0 pass, 1 fail, 77 skip.

. "$(dirname "$0")/lib/common.sh"
e2e_init test-spare-data
e2e_require qemu-io cmp dd

check_config() {   # NAME UNIT SPARE_SIZE EXTRA_PARAMS...
    local name=$1 U=$2 ssize=$3
    shift 3
    local origin=$WORK/$name-origin.img spare=$WORK/$name-spare.img
    local ref=$WORK/$name-ref.img s5 s9 q
    q=$((U / 4))
    log "[$name] unit=$U spare=$ssize $*"
    make_file "$origin" $((4 << 20)) random
    make_file "$spare" "$ssize" zero
    cp "$origin" "$ref" || fail "cp"

    start_server "$name-1" "$origin" spare="$spare" format=yes unit=$U "$@" remap=5,9
    s5=$(spare_unit_of "$WORK/$name-1.log" 5)
    s9=$(spare_unit_of "$WORK/$name-1.log" 9)
    [ -n "$s5" ] && [ -n "$s9" ] || fail "[$name] spare units of 5 and 9 not logged"
    [ "$s5" != "$s9" ] || fail "[$name] units 5 and 9 share spare unit $s5"
    [ $(((s5 + 1) * U)) -le "$ssize" ] && [ $(((s9 + 1) * U)) -le "$ssize" ] ||
        fail "[$name] spare unit past the end of the spare"
    ok "[$name] unit 5 -> spare unit $s5, unit 9 -> spare unit $s9"

    # At remap time the origin data was copied to the spare.
    same_bytes "$spare" $((s5 * U)) "$ref" $((5 * U)) $U ||
        fail "[$name] spare unit $s5 does not hold the old data of unit 5"
    ok "[$name] remap copied the origin's data of unit 5 to spare unit $s5"

    qio "$URI" "write -P 0xc5 $((5 * U)) $U" \
        "write -P 0xc9 $((9 * U + q)) $q" \
        "write -P 0x66 $((6 * U)) $U" "flush"
    stop_server

    pattern_file "$WORK/c5" 0xc5 $U
    pattern_file "$WORK/c9" 0xc9 $q
    pattern_file "$WORK/66" 0x66 $U
    same_bytes "$spare" $((s5 * U)) "$WORK/c5" 0 $U ||
        fail "[$name] spare unit $s5 does not hold the 0xc5 pattern written to unit 5"
    ok "[$name] spare unit $s5 (byte $((s5 * U))) holds the data written to unit 5"
    same_bytes "$spare" $((s9 * U + q)) "$WORK/c9" 0 $q ||
        fail "[$name] spare unit $s9 lacks the partial 0xc9 write"
    same_bytes "$spare" $((s9 * U)) "$ref" $((9 * U)) $q &&
        same_bytes "$spare" $((s9 * U + 2 * q)) "$ref" $((9 * U + 2 * q)) $((U - 2 * q)) ||
        fail "[$name] the rest of unit 9 on spare unit $s9 is not the old data"
    ok "[$name] partial write: spare unit $s9 = old data | 0xc9 | old data"
    same_bytes "$origin" $((5 * U)) "$ref" $((5 * U)) $U &&
        same_bytes "$origin" $((9 * U)) "$ref" $((9 * U)) $U ||
        fail "[$name] the origin's bad units 5/9 were written"
    ok "[$name] origin units 5 and 9 unchanged (never written)"
    same_bytes "$origin" $((6 * U)) "$WORK/66" 0 $U ||
        fail "[$name] plain unit 6 did not reach the origin"
    ok "[$name] plain unit 6 written to the origin"

    start_server "$name-2" "$origin" spare="$spare" remap=5
    grep -q "remap: unit 5 already on spare unit $s5" "$WORK/$name-2.log" ||
        fail "[$name] restart did not find unit 5 on spare unit $s5"
    qio "$URI" "read -P 0xc5 $((5 * U)) $U" "read -P 0xc9 $((9 * U + q)) $q" \
        "read -P 0x66 $((6 * U)) $U"
    stop_server
    same_bytes "$origin" $((5 * U)) "$ref" $((5 * U)) $U || fail "[$name] origin unit 5 written after restart"
    ok "[$name] restart: mapping found again, data read back"
}

check_config geometric 4096 $((8 << 20))
check_config linear 512 $((1 << 20)) strategy=linear copies=3
check_config minimal 16384 $((256 << 10))
E2E_RESULT=0
