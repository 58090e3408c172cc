#!/bin/bash
# test-badblocks.sh - real badblocks(8) output from a failing disk, fed to
# remapctl import, and exported back (issue 5, SPEC 4.2).
#
#   remap.so with rehearsal read failures -> nbdfuse -> loop device
#   badblocks -b 4096 /dev/loopN   -> the list of failing blocks
#   remapctl import (badblocks format, block size 4096) -> remapped units
#   remapctl export --format badblocks -> the same list
#
# Needs root, /dev/fuse, loop devices, nbdfuse, badblocks.  Exit 0/1/77.

. "$(dirname "$0")/lib/common.sh"
e2e_init test-badblocks
blockdev_init
e2e_require badblocks
[ -x "$RC" ] || fail "$RC not found: build first"

U=4096
ORIGIN=$WORK/origin.img
SPARE=$WORK/spare.img
make_file "$ORIGIN" $((16 << 20)) random
make_file "$SPARE" $((1 << 20)) zero
BAD="100 101 2000 4095"

rules=()
for b in $BAD; do rules+=("fail=read:$((b * U + 1024))+512"); done
start_server r1 "$ORIGIN" spare="$SPARE" format=yes read-retries=0 "${rules[@]}"
blockdev_attach badblocks
badblocks -b 4096 -o "$WORK/bb.txt" "$LOOP" >"$WORK/bb.log" 2>&1 ||
    fail "badblocks failed: $(cat "$WORK/bb.log")"
blockdev_detach
stop_server
[ "$(tr '\n' ' ' <"$WORK/bb.txt")" = "$BAD " ] ||
    fail "badblocks found '$(tr '\n' ' ' <"$WORK/bb.txt")', want '$BAD'"
ok "badblocks on the loop device found exactly blocks $BAD"

# The failed reads left those units pending; importing the list remaps them
# (offline: the origin file itself reads fine, so their data is copied).
expect 0 list -s "$SPARE" -o "$ORIGIN" --json
[ "$(jq -c '[.entries[] | [.origin_unit, .state]]' <<<"$OUT")" = \
  '[[100,"pending"],[101,"pending"],[2000,"pending"],[4095,"pending"]]' ] ||
    fail "after badblocks: $OUT"
expect 0 import "$WORK/bb.txt" --format badblocks --block-size 4096 -s "$SPARE" -o "$ORIGIN"
expect 0 list -s "$SPARE" -o "$ORIGIN" --json
[ "$(jq -c '[.entries[] | [.origin_unit, .state]]' <<<"$OUT")" = \
  '[[100,"mapped"],[101,"mapped"],[2000,"mapped"],[4095,"mapped"]]' ] ||
    fail "after import: $OUT"
for b in $BAD; do
    s=$(jq ".entries[] | select(.origin_unit == $b) | .spare_unit" <<<"$OUT")
    same_bytes "$SPARE" $((s * U)) "$ORIGIN" $((b * U)) $U ||
        fail "unit $b's data was not copied to spare unit $s"
done
ok "remapctl import of badblocks' own output remapped exactly those units, data copied"

expect 0 export --format badblocks --block-size 4096 -s "$SPARE" -o "$ORIGIN"
printf '%s\n' "$OUT" >"$WORK/exported.txt"
cmp -s "$WORK/bb.txt" "$WORK/exported.txt" ||
    fail "export differs from badblocks' list: $(cat "$WORK/exported.txt")"
ok "remapctl export --format badblocks gives back badblocks' list"
E2E_RESULT=0
