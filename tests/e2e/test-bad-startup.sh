#!/bin/bash
# test-bad-startup.sh - every way of starting remap.so wrongly is refused
# before nbdkit serves anything: non-zero exit, exactly one error line on
# stderr that names the cause (a key phrase is checked), and neither file
# changed (sha256 of every image before and after, and no file created).
#
# Cases: missing origin, unreadable origin (only as non-root), missing spare,
# spare too small, spare of another origin, spare in use by another nbdkit,
# unit/strategy mismatch with an existing spare, blank (zeroed) spare without
# format=yes, every metadata copy corrupt (with and without format=yes),
# unknown parameter, control=, format=force, copies=1 and copies=9,
# read-retries= and read-retry-delay= past their bounds, unreachable NBD
# URI, remap= past the end or malformed or larger than the spare's free
# units (checked before the spare is formatted or anything remapped), bad
# badblocks lists, origin = spare, no spare= at all.
#
# Needs: nbdkit.  Exit 0 pass, 1 fail, 77 skip.

. "$(dirname "$0")/lib/common.sh"
e2e_init test-bad-startup
e2e_require sha256sum grep dd

A=$WORK/a.img
B=$WORK/b.img
SPARE=$WORK/spare.img
make_file "$A" $((16 << 20)) random
make_file "$B" $((8 << 20)) random
make_file "$SPARE" $((8 << 20)) zero
make_file "$WORK/tiny.img" $((16 << 10)) zero

snapshot() {
    (cd "$WORK" && ls -1 -- *.img *.txt 2>/dev/null && sha256sum ./*.img)
}

# expect_refusal DESCRIPTION PHRASE-REGEX PLUGIN-PARAMS...
expect_refusal() {
    local desc=$1 phrase=$2 before after rc n
    shift 2
    before=$(snapshot)
    timeout 120 nbdkit -U - "$PLUGIN" "$@" --run 'exit 0' \
        >"$WORK/out.log" 2>"$WORK/err.log"
    rc=$?
    after=$(snapshot)
    [ "$rc" != 124 ] || fail "$desc: nbdkit hung (timeout)"
    [ "$rc" != 0 ] || fail "$desc: nbdkit started (exit 0); stderr: $(cat "$WORK/err.log")"
    grep -Eqi -- "$phrase" "$WORK/err.log" ||
        fail "$desc: stderr lacks /$phrase/: $(cat "$WORK/err.log")"
    n=$(grep -c 'error:' "$WORK/err.log")
    [ "$n" = 1 ] || fail "$desc: expected one error line, got $n: $(cat "$WORK/err.log")"
    [ "$before" = "$after" ] || {
        diff <(echo "$before") <(echo "$after")
        fail "$desc: files changed although the start was refused"
    }
    ok "$desc -> exit $rc: $(grep 'error:' "$WORK/err.log" | sed 's/^nbdkit: error: //')"
}

# ---- configuration errors ------------------------------------------------------
expect_refusal "missing origin" "no such file" "$WORK/nonexistent.img" spare="$SPARE"
if [ "$(id -u)" = 0 ]; then
    log "unreadable origin: skipped (root reads any file)"
else
    cp "$A" "$WORK/locked.img" && chmod 000 "$WORK/locked.img"
    expect_refusal "unreadable origin" "permission denied" "$WORK/locked.img" spare="$SPARE" format=yes
    chmod 600 "$WORK/locked.img"
fi
expect_refusal "missing spare" "does not exist.*truncate -s" "$A" spare="$WORK/nospare.img" format=yes
expect_refusal "no spare= at all" "spare=.*required" "$A"
expect_refusal "origin = spare" "same file" "$A" spare="$A"
expect_refusal "unknown parameter" "unknown parameter 'colour'" "$A" spare="$SPARE" colour=blue
touch "$WORK/not-a-socket"
expect_refusal "control= on a regular file" "exists and is not a socket" "$A" spare="$SPARE" control="$WORK/not-a-socket"
expect_refusal "format=force" "format=force is not supported" "$A" spare="$SPARE" format=force
expect_refusal "NBD URI origin with no server" "cannot connect to NBD server" \
    "nbd+unix:///?socket=$WORK/nobody.sock" spare="$SPARE" format=yes
expect_refusal "bad unit=" "power of two" "$A" spare="$SPARE" format=yes unit=1000
expect_refusal "copies=1" "copies=1: must be from 2 to 8" "$A" spare="$SPARE" format=yes copies=1
expect_refusal "copies=9" "copies=9: must be from 2 to 8" "$A" spare="$SPARE" format=yes copies=9
expect_refusal "read-retries=11" "read-retries=11: at most 10" "$A" spare="$SPARE" format=yes read-retries=11
expect_refusal "read-retry-delay=10001" "read-retry-delay=10001: at most 10000 ms" \
    "$A" spare="$SPARE" format=yes read-retry-delay=10001
expect_refusal "malformed remap=" "item \"x7\": not a unit" "$A" spare="$SPARE" format=yes remap=5,x7
printf '12\n7 8\n' >"$WORK/bad-list.txt"
expect_refusal "malformed badblocks list" "bad-list.txt:2: one block number per line" \
    "$A" spare="$SPARE" format=yes badblocks="$WORK/bad-list.txt"
expect_refusal "missing badblocks list" "badblocks=.*no such file" \
    "$A" spare="$SPARE" format=yes badblocks="$WORK/none.txt"

# ---- spare errors ----------------------------------------------------------------
expect_refusal "spare too small (16 KiB)" "too small.*at least" "$A" spare="$WORK/tiny.img" format=yes
make_file "$WORK/small.img" $((36 << 10)) zero
expect_refusal "start list larger than a new spare" "name 21 units.*only 3 free units" \
    "$A" spare="$WORK/small.img" format=yes remap=0-20
expect_refusal "blank spare without format=yes" "holds no remap metadata.*format=yes" "$A" spare="$SPARE"

log "formatting the spare for a.img (16 MiB)"
nbdkit -U - "$PLUGIN" "$A" spare="$SPARE" format=yes --run 'exit 0' 2>"$WORK/format.log" ||
    fail "formatting the spare failed: $(cat "$WORK/format.log")"
grep -q REMAPSP1 "$SPARE" || fail "no superblock magic on the formatted spare"

expect_refusal "spare of another origin (8 MiB b.img)" "another origin" "$B" spare="$SPARE"
expect_refusal "spare of another origin, format=yes" "another origin" "$B" spare="$SPARE" format=yes
expect_refusal "unit=512 on a 4096-unit spare" "formatted with unit=4096 but unit=512" "$A" spare="$SPARE" unit=512
expect_refusal "strategy=linear on a geometric spare" "formatted with strategy=geometric" "$A" spare="$SPARE" strategy=linear
expect_refusal "remap= past the end" "past the end of the origin" "$A" spare="$SPARE" remap=4096
printf '65536\n' >"$WORK/far-list.txt"
expect_refusal "badblocks block past the end" "far-list.txt.*past the end" "$A" spare="$SPARE" \
    badblocks="$WORK/far-list.txt" badblocks-block-size=1024

expect_refusal "start list larger than the free units" "needs 2000 free spare units, but the spare has 19[0-9][0-9]" \
    "$A" spare="$SPARE" remap=0-999,2000-2999

log "spare in use: a first nbdkit holds it"
start_server holder "$A" spare="$SPARE"
expect_refusal "spare in use by another nbdkit" "in use by another process" "$A" spare="$SPARE"
expect_refusal "spare in use, with format=yes" "in use by another process" "$A" spare="$SPARE" format=yes
stop_server

log "damaging every metadata copy (one byte after each superblock magic)"
offsets=$(grep -obUa REMAPSP1 "$SPARE" | cut -d: -f1)
[ -n "$offsets" ] || fail "no superblock found"
for off in $offsets; do
    printf '\377' | dd of="$SPARE" bs=1 seek=$((off + 300)) conv=notrunc status=none ||
        fail "dd into the spare"
done
log "damaged $(echo "$offsets" | wc -l) superblocks at bytes $(echo $offsets)"
expect_refusal "every copy corrupt" "every metadata copy is damaged" "$A" spare="$SPARE"
expect_refusal "every copy corrupt, format=yes" "every metadata copy is damaged" "$A" spare="$SPARE" format=yes

log "zeroing the whole spare"
dd if=/dev/zero of="$SPARE" bs=1M count=8 conv=notrunc status=none || fail "dd"
expect_refusal "zeroed spare (metadata gone)" "holds no remap metadata" "$A" spare="$SPARE"
E2E_RESULT=0
