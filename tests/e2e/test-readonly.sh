#!/bin/bash
# test-readonly.sh - nbdkit -r writes nothing, to the spare or the origin.
#
# A spare with remaps and one damaged metadata copy (a read-write start
# would repair it), an origin whose unit 2 fails reads (a read-write start
# would record it pending on the spare):
#   - nbdkit -r, and --read-only inside a cluster of other options: clients
#     read the remapped unit, healthy units, and the failing unit (EIO);
#     afterwards the sha256 of both files is unchanged;
#   - format=yes on a blank spare and remap= of a unit not yet remapped are
#     refused under -r (they would write), with nothing changed;
#   - a read-only origin (an NBD export of `nbdkit -r file') is accepted
#     with -r, and refused without it.
# Then, without -r, the same spare is repaired and the failing unit becomes
# pending: the files do change, so the checks above can fail.
#
# Needs: nbdkit (file plugin), qemu-io, sha256sum; the read-only origin
# part also needs remap built with libnbd.  Exit 0 pass, 1 fail, 77 skip.

. "$(dirname "$0")/lib/common.sh"
e2e_init test-readonly
e2e_require qemu-io sha256sum grep dd

U=4096
O=$WORK/origin.img
S=$WORK/spare.img
make_file "$O" $((4 << 20)) random
make_file "$S" $((4 << 20)) zero
FAIL="fail=read:$((2 * U))+$U"

log "formatting the spare and remapping unit 5"
nbdkit -U - "$PLUGIN" "$O" spare="$S" format=yes remap=5 --run 'exit 0' \
    2>"$WORK/format.log" || fail "format: $(cat "$WORK/format.log")"
offsets=$(grep -obUa REMAPSP1 "$S" | cut -d: -f1)
second=$(echo "$offsets" | sed -n 2p)
[ -n "$second" ] || fail "no second superblock found (offsets: $offsets)"
printf '\377' | dd of="$S" bs=1 seek=$((second + 300)) conv=notrunc status=none ||
    fail "dd into the spare"
log "damaged the superblock of copy 1 at byte $second"

# ro_read NAME: read healthy, remapped and failing units through $URI.
ro_read() {
    local out
    out=$(qemu-io -r -f raw -c "read 0 $U" -c "read $((5 * U)) $U" \
              -c "read $((9 * U)) $((3 * U))" "$URI" 2>&1)
    printf '%s\n' "$out" | grep -c '^read [0-9]*/[0-9]* bytes' | grep -qx 3 ||
        { printf '%s\n' "$out"; fail "$1: a healthy or remapped read failed"; }
    out=$(qemu-io -r -f raw -c "read $((2 * U)) $U" "$URI" 2>&1)
    printf '%s\n' "$out" | grep -q "Input/output error" ||
        { printf '%s\n' "$out"; fail "$1: the failing unit did not give EIO"; }
}

before=$(sha "$O") sbefore=$(sha "$S")
start_server ro1 -r -- "$O" spare="$S" "$FAIL"
ro_read "-r"
ro_read "-r, again"
stop_server
[ "$(sha "$O")" = "$before" ] || fail "-r: the origin changed"
[ "$(sha "$S")" = "$sbefore" ] || fail "-r: the spare changed (repair or pending marks written)"
grep -q "read-only (nbdkit -r)" "$WORK/ro1.log" || fail "-r not seen by the plugin"
ok "-r: reads served (EIO for the failing unit), origin and spare byte for byte unchanged"

start_server ro2 --read-only -- "$O" spare="$S" "$FAIL"
grep -q "read-only (nbdkit -r)" "$WORK/ro2.log" || fail "--read-only not seen by the plugin"
ro_read "--read-only"
stop_server
start_server ro3 -vr -- "$O" spare="$S" "$FAIL"
grep -q "read-only (nbdkit -r)" "$WORK/ro3.log" || fail "-vr not seen by the plugin"
stop_server
[ "$(sha "$O")" = "$before" ] && [ "$(sha "$S")" = "$sbefore" ] ||
    fail "--read-only or -vr: a file changed"
ok "--read-only and -r in a cluster (-vr) are seen too; nothing changed"

# ---- refusals under -r --------------------------------------------------------------
make_file "$WORK/blank.img" $((4 << 20)) zero
snap=$(sha256sum "$O" "$S" "$WORK/blank.img")
nbdkit -r -U - "$PLUGIN" "$O" spare="$WORK/blank.img" format=yes --run 'exit 0' \
    2>"$WORK/err1.log" && fail "format=yes under -r started"
grep -q "nbdkit -r forbids writing" "$WORK/err1.log" || fail "format=yes under -r: $(cat "$WORK/err1.log")"
nbdkit -r -U - "$PLUGIN" "$O" spare="$S" remap=7 --run 'exit 0' \
    2>"$WORK/err2.log" && fail "remap= under -r started"
grep -q "nbdkit -r forbids writing" "$WORK/err2.log" || fail "remap= under -r: $(cat "$WORK/err2.log")"
nbdkit -r -U - "$PLUGIN" "$O" spare="$S" remap=5 --run 'exit 0' \
    2>"$WORK/err3.log" || fail "remap= of an already remapped unit under -r: $(cat "$WORK/err3.log")"
[ "$(sha256sum "$O" "$S" "$WORK/blank.img")" = "$snap" ] || fail "a refused -r start changed a file"
ok "-r refuses format=yes and remap= of new units (already remapped ones are fine); nothing changed"

# ---- a read-only origin ----------------------------------------------------------------
if nbdkit "$PLUGIN" --dump-plugin | grep -q '^remap_nbd_backend=yes'; then
    start_nbdkit rofile -r file "$O"
    RO_URI=$URI RO_PID=$SERVER_PID
    nbdkit -U - "$PLUGIN" origin="$RO_URI" spare="$S" --run 'exit 0' \
        2>"$WORK/err4.log" && fail "a read-only origin was accepted without -r"
    grep -q "is read-only" "$WORK/err4.log" || fail "read-only origin without -r: $(cat "$WORK/err4.log")"
    start_server ro4 -r -- origin="$RO_URI" spare="$S" "$FAIL"
    ro_read "read-only origin"
    stop_server
    stop_server "$RO_PID"
    [ "$(sha "$O")" = "$before" ] && [ "$(sha "$S")" = "$sbefore" ] ||
        fail "read-only origin: a file changed"
    ok "a read-only origin (nbdkit -r file) is accepted with -r, refused without"
else
    log "read-only NBD origin: skipped (remap built without libnbd)"
fi

# ---- the same without -r writes: the checks above can fail -------------------------------
# (a -r inside --run's command is not nbdkit's flag)
nbdkit -v -U - "$PLUGIN" "$O" spare="$S" "$FAIL" \
    --run 'qemu-io -f raw -c "read 8192 4096" "$uri"; : -r' >"$WORK/rw.log" 2>&1
grep -q "read-only (nbdkit -r)" "$WORK/rw.log" && fail "a -r inside --run was taken for the flag"
grep -q "repaired" "$WORK/rw.log" || fail "without -r the damaged copy was not repaired"
grep -q "read error in unit 2 .*unit marked pending" "$WORK/rw.log" &&
    grep -q "exit: .* pending=1 " "$WORK/rw.log" || fail "without -r unit 2 was not marked pending"
[ "$(sha "$S")" != "$sbefore" ] || fail "without -r the spare did not change: the test proves nothing"
ok "without -r the same start repairs the copy and records the pending unit (spare changed)"
E2E_RESULT=0
