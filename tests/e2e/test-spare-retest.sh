#!/bin/bash
# test-spare-retest.sh - remapctl spare-retest clears BAD marks on spare
# units once the cause is fixed, online (control socket) and offline, and
# keeps the units that still fail (issue 8, item 3).
#
#   nbdkit remap.so origin=origin.img spare=nbd+unix://...eval.sock control=...
#                                            |
#                nbdkit eval over spare.img: writes touching the byte
#                ranges listed in bad.txt fail with EIO (a spare that
#                develops bad sectors, and then gets better)
#
# Two spare units (the first two the allocator hands out) fail writes: a
# remap marks both bad and lands on the third.  Then:
#   online, nothing fixed      -> exit 1, both "still bad"
#   online, the first fixed    -> exit 1, first cleared, second still bad
#                                 (--json, one line, per-unit results)
#   offline, all fixed         -> exit 0, cleared; status: 0 bad units
#   the remapped unit's data still reads back through a new server.
#
# Needs: nbdkit (eval plugin), qemu-img, python3, remap built with libnbd.  Exit 0
# pass, 1 fail, 77 skip.

. "$(dirname "$0")/lib/common.sh"
e2e_init test-spare-retest
e2e_require qemu-img dd stat python3
nbdkit "$PLUGIN" --dump-plugin | grep -q '^remap_nbd_backend=yes' ||
    skip "remap was built without libnbd (remap_nbd_backend=no)"
nbdkit eval --version >/dev/null 2>&1 || skip "nbdkit eval plugin not installed"

U=4096
ORIGIN=$WORK/origin.img
SPARE=$WORK/spare.img
BAD=$WORK/bad.txt
make_file "$ORIGIN" $((4 << 20)) random
make_file "$SPARE" $((1 << 20)) zero
: >"$BAD"

# pwrite fails if [offset, offset+count) meets a "START END" line of bad.txt.
start_nbdkit spare eval \
    get_size="stat -c %s $SPARE" \
    pread="dd if=$SPARE skip=\$4 count=\$3 iflag=skip_bytes,count_bytes status=none" \
    pwrite="
      while read -r a b; do
        if [ \$4 -lt \$b ] && [ \$a -lt \$((\$4 + \$3)) ]; then
          cat >/dev/null; echo 'EIO injected bad sector' >&2; exit 1
        fi
      done <$BAD
      dd of=$SPARE seek=\$4 oflag=seek_bytes conv=notrunc status=none" \
    can_write="exit 0" can_flush="exit 0" flush="exit 0"
SPARE_URI=$URI
CTL=$WORK/ctl.sock
start_server r1 origin="$ORIGIN" spare="$SPARE_URI" format=yes control="$CTL"
R1=$SERVER_PID

expect 0 status --control "$CTL" --json
A=$(python3 -c '
import json, sys
g = json.loads(sys.argv[1])["geometry"]
rsv = set()
for o in g["copy_offsets"]:
    rsv.update(range(o, o + g["copy_units"]))
print(min(u for u in range(g["spare_units"]) if u not in rsv))' "$OUT") ||
    fail "cannot find the first free spare unit in: $OUT"
B=$((A + 1))
printf '%s %s\n' $((A * U)) $(((A + 2) * U)) >"$BAD"
expect 0 remap 40 -u --control "$CTL"
printf '%s\n' "$OUT" | grep -q "spare unit $((A + 2))" ||
    fail "unit 40 should land on spare unit $((A + 2)) after $A and $B failed: $OUT"
expect 0 status --control "$CTL" --json
printf '%s\n' "$OUT" | grep -q '"spare_bad_units":2,' || fail "status: want 2 bad spare units: $OUT"
ok "spare units $A and $B failed writes and are marked bad; unit 40 is on $((A + 2))"

expect 1 spare-retest --control "$CTL"
[ "$(printf '%s\n' "$OUT" | grep -c 'still bad (failed the test)')" = 2 ] ||
    fail "nothing fixed: want two 'still bad': $OUT"
printf '%s\n' "$ERR" | grep -q '2 of 2 bad spare units still fail' || fail "stderr: $ERR"
ok "online retest, nothing fixed: exit 1, both still bad"

printf '%s %s\n' $((B * U)) $(((B + 1) * U)) >"$BAD"
expect 1 spare-retest --control "$CTL" --json
[ "$(printf '%s\n' "$OUT" | wc -l)" = 1 ] || fail "--json is not one line: $OUT"
printf '%s\n' "$OUT" | grep -q "\"results\":\[{\"spare_unit\":$A,\"result\":\"cleared\"},{\"spare_unit\":$B,\"result\":\"still-bad\"}\],\"tested\":2,\"cleared\":1,\"still_bad\":1" ||
    fail "json: $OUT"
expect 0 status --control "$CTL" --json
printf '%s\n' "$OUT" | grep -q '"spare_bad_units":1,' || fail "status: want 1 bad spare unit: $OUT"
ok "online retest, $A fixed: cleared; $B still bad (JSON)"
stop_server "$R1"

: >"$BAD"
expect 0 spare-retest -s "$SPARE_URI" -o "$ORIGIN"
printf '%s\n' "$OUT" | grep -q "spare unit $B: cleared" || fail "offline retest: $OUT"
expect 0 status -s "$SPARE_URI" -o "$ORIGIN" --json
printf '%s\n' "$OUT" | grep -q '"spare_bad_units":0,' || fail "status: want 0 bad spare units: $OUT"
ok "offline retest, all fixed: exit 0, $B cleared; status: 0 bad spare units"

start_server r2 origin="$ORIGIN" spare="$SPARE_URI"
qemu-img compare -f raw -F raw "$ORIGIN" "$URI" >/dev/null ||
    fail "the export differs from the origin (unit 40 was remapped by copy)"
ok "a new server serves the same bytes (unit 40 from the spare)"
stop_server
E2E_RESULT=0
