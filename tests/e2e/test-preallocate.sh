#!/bin/bash
# test-preallocate.sh - a formatted file spare cannot run out of host space:
# format allocates it in full by default, or refuses (writing nothing) with
# a message naming the space it needs; --sparse / preallocate=no keep it
# sparse on request (issue 8, item 3).
#
#   remapctl format ORIGIN SPARE            -> every block allocated (du)
#   remapctl format ORIGIN SPARE --sparse   -> a few blocks of metadata only
#   remapctl format ORIGIN HUGE             -> exit 1, "needs ... free", no
#                                              metadata, nothing allocated
#   nbdkit remap.so ... format=yes          -> allocated, and served
#   ... format=yes preallocate=no           -> sparse, and served
#   ... format=yes, spare HUGE              -> refused, one error line
#   ... preallocate=no without format=yes   -> refused, says why
#
# HUGE is a sparse file 1 GiB larger than the free space of the work
# directory's file system.  Needs: nbdkit, qemu-io, stat.  Exit 0 pass,
# 1 fail, 77 skip.

. "$(dirname "$0")/lib/common.sh"
e2e_init test-preallocate
e2e_require qemu-io stat

ORIGIN=$WORK/origin.img
make_file "$ORIGIN" $((32 << 20)) random

# allocated PATH: bytes the file system holds for PATH.
allocated() { echo $(($(stat -c '%b' "$1") * $(stat -c '%B' "$1"))); }
size_of() { stat -c '%s' "$1"; }

full() {
    local a s
    a=$(allocated "$1") s=$(size_of "$1")
    [ "$a" -ge "$s" ] || fail "$2: $1 has $a of $s bytes allocated, want all"
    ok "$2: $a of $s bytes allocated"
}
sparse() {
    local a s
    a=$(allocated "$1") s=$(size_of "$1")
    [ "$a" -lt $((s / 2)) ] || fail "$2: $1 has $a of $s bytes allocated, want it sparse"
    ok "$2: only $a of $s bytes allocated (sparse)"
}

# ---- remapctl format ---------------------------------------------------------
make_file "$WORK/s1.img" $((16 << 20)) zero
expect 0 format "$ORIGIN" "$WORK/s1.img"
printf '%s\n' "$OUT" | grep -q 'allocated in full' || fail "format output: $OUT"
full "$WORK/s1.img" "remapctl format"

make_file "$WORK/s2.img" $((16 << 20)) zero
expect 0 format "$ORIGIN" "$WORK/s2.img" --sparse
printf '%s\n' "$OUT" | grep -q 'left sparse' || fail "format --sparse output: $OUT"
sparse "$WORK/s2.img" "remapctl format --sparse"
expect 0 check "$WORK/s2.img"

AVAIL=$(($(stat -f -c '%a' "$WORK") * $(stat -f -c '%S' "$WORK")))
HUGE=$WORK/huge.img
truncate -s $(((AVAIL + (1 << 30)) / 4096 * 4096)) "$HUGE" ||
    skip "the file system of $WORK cannot hold a sparse file larger than its free space"
expect 1 format "$ORIGIN" "$HUGE"
printf '%s\n' "$ERR" | grep -q 'needs .* more, but its file system has only .* free' ||
    fail "refusal does not name the space: $ERR"
printf '%s\n' "$ERR" | grep -q -- '--sparse' || fail "refusal does not name the opt-out: $ERR"
ok "remapctl format of a spare larger than the free space: refused: $(printf '%s' "$ERR" | head -c 200)..."
[ "$(allocated "$HUGE")" -lt $((1 << 20)) ] || fail "the refused format allocated $(allocated "$HUGE") bytes"
expect 6 check "$HUGE"
ok "... and nothing was allocated or written (check: unusable, no metadata)"

# ---- the plugin's format=yes -------------------------------------------------
serve_and_write() {
    start_server "$1" origin="$ORIGIN" spare="$2" format=yes "${@:3}"
    qio "$URI" "write -P 0x5a 8192 4096" "read -P 0x5a 8192 4096"
    stop_server
}
make_file "$WORK/s3.img" $((16 << 20)) zero
serve_and_write p1 "$WORK/s3.img"
full "$WORK/s3.img" "format=yes"

make_file "$WORK/s4.img" $((16 << 20)) zero
serve_and_write p2 "$WORK/s4.img" preallocate=no
sparse "$WORK/s4.img" "format=yes preallocate=no"

# refuse DESC PHRASE PARAMS...: nbdkit must not start, one error line.
refuse() {
    local desc=$1 phrase=$2 rc
    shift 2
    timeout 120 nbdkit -U - "$PLUGIN" "$@" --run 'exit 0' >"$WORK/out.log" 2>"$WORK/err.log"
    rc=$?
    [ "$rc" != 0 ] && [ "$rc" != 124 ] || fail "$desc: nbdkit exit $rc; stderr: $(cat "$WORK/err.log")"
    grep -Eq -- "$phrase" "$WORK/err.log" || fail "$desc: stderr lacks /$phrase/: $(cat "$WORK/err.log")"
    [ "$(grep -c 'error:' "$WORK/err.log")" = 1 ] || fail "$desc: not one error line: $(cat "$WORK/err.log")"
    ok "$desc: refused: $(grep 'error:' "$WORK/err.log" | head -c 200)..."
}
refuse "format=yes on a spare larger than the free space" \
    'needs .* more, but its file system has only .* free' \
    origin="$ORIGIN" spare="$HUGE" format=yes
[ "$(allocated "$HUGE")" -lt $((1 << 20)) ] || fail "the refused start allocated $(allocated "$HUGE") bytes"
expect 6 check "$HUGE"
rm -f "$HUGE"

make_file "$WORK/s5.img" $((16 << 20)) zero
refuse "preallocate=no without format=yes" 'preallocate=no applies only with format=yes' \
    origin="$ORIGIN" spare="$WORK/s5.img" preallocate=no
sparse "$WORK/s5.img" "the refused start"
E2E_RESULT=0
