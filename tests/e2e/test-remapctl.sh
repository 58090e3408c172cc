#!/bin/bash
# test-remapctl.sh - remapctl offline, on spares it formats itself.
#
# - format, refusal to reformat, status/list/lookup (human and JSON) checked
#   against the files: the data of a remapped unit is on the spare at the
#   spare unit `list' names; unmap copies it back to the origin;
# - dump/check/repair: one damaged copy -> check exits 1, repair -> 0;
#   every copy damaged -> check exits 2; so does a spare resized by a unit;
# - refusals: a running nbdkit holds the files (exit 3, message names
#   --control), wrong origin, unformatted spare, usage errors (exit 2);
# - import/export round trips: badblocks lists (hand-written, and real
#   e2fsprogs badblocks output when the tool exists) and ddrescue mapfiles
#   with every status character; malformed lines rejected with the line
#   number, ranges past the origin refused with nothing imported.
#
# Needs: nbdkit, jq, dd, cmp.  Exit 0 pass, 1 fail, 77 skip.

. "$(dirname "$0")/lib/common.sh"
e2e_init test-remapctl
e2e_require jq dd cmp

RC=$REMAP_BUILD_DIR/remapctl
[ -x "$RC" ] || fail "$RC not found: build first"
U=4096

O=$WORK/origin.img
S=$WORK/spare.img
make_file "$O" $((4 << 20)) random
cp "$O" "$WORK/origin-ref.img"
make_file "$S" $((1 << 20)) zero

# ---- format --------------------------------------------------------------
expect 0 format "$O" "$S" --unit $U
grep -q "formatted" <<<"$OUT" || fail "format said: $OUT"
expect 1 format "$O" "$S"
grep -q -- "--force" <<<"$ERR" || fail "reformat refusal does not name --force: $ERR"
expect 2 format "$O" "$S" --unit 1000
expect 2 format "$O" "$S" --copies 1 --force
grep -q "from 2 to 8" <<<"$ERR" || fail "--copies 1: message does not give the range: $ERR"
expect 2 format "$O"
ok "format, refusal to reformat without --force, bad unit, --copies 1"

# ---- refusals ---------------------------------------------------------------
make_file "$WORK/blank.img" $((1 << 20)) zero
expect 1 status -s "$WORK/blank.img" -o "$O"
grep -qi "format" <<<"$ERR" || fail "unformatted spare: message does not suggest format: $ERR"
make_file "$WORK/other.img" $((2 << 20)) zero
expect 1 status -s "$S" -o "$WORK/other.img"
grep -q "another origin" <<<"$ERR" || fail "wrong origin: $ERR"
expect 1 remap 8 -s "$S" -o "$WORK/other.img"
expect 2 remap 8 -s "$S"
grep -q -- "--origin" <<<"$ERR" || fail "remap without origin: $ERR"
expect 2 frobnicate -s "$S"
expect 2 remap -s "$S" -o "$O"
expect 2 remap 99999999 -s "$S" -o "$O"
grep -q "past the end" <<<"$ERR" || fail "LBA past the end: $ERR"
expect 2 status -s "$S" -c "$WORK/x.sock"
ok "refusals: unformatted spare, wrong origin, missing origin, usage errors"

# ---- remap, list, lookup, status -------------------------------------------
expect 0 remap 40 16 -s "$S" -o "$O"          # units 5 and 6
grep -q "unit 5: remapped" <<<"$OUT" && grep -q "unit 6: remapped" <<<"$OUT" ||
    fail "remap output: $OUT"
expect 0 remap -u 100 -s "$S" -o "$O" --json
[ "$(jq -r '.results[0].result' <<<"$OUT")" = remapped ] || fail "remap --json: $OUT"
expect 0 list "$S" "$O" --json
[ "$(jq -c '[.entries[] | [.origin_unit, .state, .lba, .sectors]]' <<<"$OUT")" = \
  '[[5,"mapped",40,8],[6,"mapped",48,8],[100,"mapped",800,8]]' ] ||
    fail "list --json: $OUT"
[ "$(jq .count <<<"$OUT")" = 3 ] || fail "list count: $OUT"
# The engine's own state: the spare unit list names holds the unit's data.
for u in 5 6 100; do
    s=$(jq ".entries[] | select(.origin_unit == $u) | .spare_unit" <<<"$OUT")
    same_bytes "$S" $((s * U)) "$WORK/origin-ref.img" $((u * U)) $U ||
        fail "spare unit $s does not hold origin unit $u's data"
done
ok "list --json matches the spare's bytes"
expect 0 list -s "$S" -o "$O"
grep -Eq '^ +5  40-47 +[0-9]+  mapped' <<<"$OUT" || fail "list (human): $OUT"
grep -q "3 entries" <<<"$OUT" || fail "list (human) count: $OUT"
expect 0 lookup 47 -s "$S" -o "$O" --json
[ "$(jq -r .state <<<"$OUT")" = mapped ] && [ "$(jq .origin_unit <<<"$OUT")" = 5 ] ||
    fail "lookup: $OUT"
expect 0 status "$S" "$O" --json
[ "$(jq .counters.reallocated_units <<<"$OUT")" = 3 ] || fail "status counters: $OUT"
[ "$(jq -r .state <<<"$OUT")" = healthy ] || fail "status state: $OUT"
[ "$(jq .geometry.unit <<<"$OUT")" = $U ] || fail "status unit: $OUT"
for k in reallocation_events pending_units uncorrectable_units spare_free_units \
         spare_total_units read_errors write_errors retries copies_valid \
         copies_total generation; do
    [ "$(jq ".counters | has(\"$k\")" <<<"$OUT")" = true ] || fail "status --json lacks $k"
done
expect 0 status "$S"           # origin from the label recorded at format
grep -Eq "reallocated units +3 " <<<"$OUT" || fail "status (human): $OUT"
grep -q "recorded at format" <<<"$ERR" || fail "status without origin: $ERR"
ok "status (human and JSON), lookup"

# ---- unmap copies back ------------------------------------------------------
s6=$(jq '.entries[] | select(.origin_unit == 6) | .spare_unit' <<<"$(
    "$RC" list -s "$S" -o "$O" --json)")
pattern_file "$WORK/p" 0x5a $U
dd if="$WORK/p" of="$S" bs=$U seek="$s6" conv=notrunc status=none  # "new data" on the spare
expect 0 unmap 48 8 -s "$S" -o "$O"
grep -q "unit 6: copied-back" <<<"$OUT" || fail "unmap: $OUT"
same_bytes "$O" $((6 * U)) "$WORK/p" 0 $U || fail "unmap did not copy unit 6 back"
expect 0 list -s "$S" -o "$O" --json
[ "$(jq -c '[.entries[].origin_unit]' <<<"$OUT")" = '[5,100]' ] || fail "after unmap: $OUT"
ok "unmap copies the spare's data back to the origin"

# ---- dump, check, repair ----------------------------------------------------
expect 0 check "$S"
expect 0 dump "$S" --json
n=$(jq .copies <<<"$OUT")
[ "$n" -ge 2 ] || fail "dump: copies $n"
[ "$(jq '[.copy[] | select(.valid)] | length' <<<"$OUT")" = "$n" ] || fail "dump: $OUT"
gen=$(jq .generation <<<"$OUT")
[ "$(jq "[.copy[] | select(.max_generation == $gen)] | length" <<<"$OUT")" = "$n" ] ||
    fail "dump: not every copy at generation $gen"
c1=$(jq '.copy[1].first_unit' <<<"$OUT")
cp "$S" "$WORK/spare-good.img"
dd if=/dev/zero of="$S" bs=$U seek="$c1" count=1 conv=notrunc status=none
expect 1 check "$S"
grep -q repairable <<<"$OUT" || fail "check output: $OUT"
expect 0 dump "$S" --json
[ "$(jq '.copy[1].valid' <<<"$OUT")" = false ] && [ "$(jq '.copy[0].valid' <<<"$OUT")" = true ] ||
    fail "dump after damage: $OUT"
expect 0 dump "$S"
grep -q "INVALID" <<<"$OUT" || fail "dump (human): $OUT"
expect 0 repair "$S" "$O"
grep -q "after:  clean" <<<"$OUT" || fail "repair: $OUT"
expect 0 check "$S"
ok "one damaged copy: check 1, repair, check 0"
cp "$S" "$WORK/dead.img"
jq -r '.copy[].first_unit' <<<"$("$RC" dump "$S" --json)" | while read -r f; do
    dd if=/dev/zero of="$WORK/dead.img" bs=$U seek="$f" count=2 conv=notrunc status=none
done
expect 6 check "$WORK/dead.img"
grep -q unusable <<<"$OUT" || fail "check of a dead spare: $OUT"
expect 6 repair "$WORK/dead.img" "$O"
ok "every copy damaged: check 6 (unusable), repair refused (6)"
size=$(stat -c %s "$S")
for grow in +$U -$U; do
    cp "$S" "$WORK/resized.img"
    truncate -s "$grow" "$WORK/resized.img"
    expect 6 check "$WORK/resized.img"
    grep -q "unusable.*truncate -s $size" <<<"$OUT" || fail "check of a spare resized by $grow: $OUT"
    expect 6 check "$WORK/resized.img" --json
    [ "$(jq -r .verdict <<<"$OUT")" = unusable ] && [ "$(jq .exit <<<"$OUT")" = 6 ] || fail "check --json, resized by $grow: $OUT"
    expect 6 repair "$WORK/resized.img" "$O"
done
ok "a spare resized by a unit either way: check 6 with the size to restore, repair refused"

# ---- refusal while a server holds the files ---------------------------------
start_server held "$O" spare="$S"
expect 3 status -s "$S" -o "$O"
grep -q -- "--control" <<<"$ERR" || fail "busy message does not suggest --control: $ERR"
expect 3 remap 8 -s "$S" -o "$O"
expect 3 format "$O" "$S" --force
stop_server
expect 0 status -s "$S" -o "$O"
ok "refused (exit 3, suggests --control) while nbdkit holds the spare"

# ---- import / export: badblocks ---------------------------------------------
fresh() {  # fresh NAME: a new spare for $O
    make_file "$WORK/$1.img" $((1 << 20)) zero
    "$RC" format "$O" "$WORK/$1.img" --unit $U >/dev/null || fail "format $1"
}
fresh bb
printf '100\n101\n\n4000\n4001\n4002\n4003\n' >"$WORK/bb.txt"   # 1 KiB blocks
expect 0 import "$WORK/bb.txt" --format badblocks --block-size 1024 -s "$WORK/bb.img" -o "$O"
expect 0 list -s "$WORK/bb.img" -o "$O" --json
[ "$(jq -c '[.entries[].origin_unit]' <<<"$OUT")" = '[25,1000]' ] || fail "import badblocks: $OUT"
expect 0 export --format badblocks --block-size 4096 -s "$WORK/bb.img" -o "$O"
[ "$OUT" = "$(printf '25\n1000')" ] || fail "export badblocks 4096: $OUT"
expect 0 export --format badblocks --block-size 1024 "$WORK/bb.img" "$O"
[ "$(echo "$OUT" | tr '\n' ' ')" = "100 101 102 103 4000 4001 4002 4003 " ] ||
    fail "export badblocks 1024: $OUT"
echo "$OUT" >"$WORK/bb2.txt"
fresh bb2
expect 0 import "$WORK/bb2.txt" --format badblocks --block-size 1024 -s "$WORK/bb2.img" -o "$O" --json
[ "$(jq .ranges <<<"$OUT")" = 2 ] || fail "import --json: $OUT"
# One after the other: both open (and lock) the same origin.
"$RC" list -s "$WORK/bb.img" -o "$O" --json | jq -c '[.entries[] | [.origin_unit, .state]]' >"$WORK/l1"
"$RC" list -s "$WORK/bb2.img" -o "$O" --json | jq -c '[.entries[] | [.origin_unit, .state]]' >"$WORK/l2"
diff "$WORK/l1" "$WORK/l2" || fail "badblocks export -> import round trip differs"
ok "badblocks import/export round trip"
printf '12\n13\nabc\n' >"$WORK/bad.txt"
expect 1 import "$WORK/bad.txt" --format badblocks --block-size 1024 -s "$WORK/bb.img" -o "$O"
grep -q "bad.txt:3:" <<<"$ERR" || fail "malformed badblocks: $ERR"
printf '99999999\n' >"$WORK/far.txt"
expect 1 import "$WORK/far.txt" --format badblocks --block-size 1024 -s "$WORK/bb.img" -o "$O"
grep -q "Nothing was imported" <<<"$ERR" || fail "past the end: $ERR"
expect 2 import "$WORK/bb.txt" --format badblocks -s "$WORK/bb.img" -o "$O"
ok "malformed badblocks line rejected with its number; past-the-end list refused"
if command -v badblocks >/dev/null 2>&1; then
    badblocks -b 4096 -o "$WORK/real-bb.txt" "$WORK/origin-ref.img" 2>/dev/null ||
        fail "badblocks failed"
    [ ! -s "$WORK/real-bb.txt" ] || fail "badblocks found bad blocks in a file"
    expect 0 import "$WORK/real-bb.txt" --format badblocks --block-size 4096 -s "$WORK/bb2.img" -o "$O"
    grep -q "imported 0 bad range" <<<"$OUT" || fail "import of real badblocks output: $OUT"
    ok "real e2fsprogs badblocks output (a healthy file: empty list) imported"
else
    log "badblocks not installed: real badblocks output not tested"
fi

# ---- import / export: ddrescue mapfiles --------------------------------------
fresh dr
cat >"$WORK/map.txt" <<'EOF'
# Mapfile. Created by GNU ddrescue version 1.27
# Command line: ddrescue /dev/sdX disk.img map.txt
# current_pos  current_status  current_pass
0x00010000     /               3
#      pos        size  status
0x00000000  0x00008000  +
0x00008000  0x00000200  -
0x00008200  0x00007E00  +
0x00010000  0x00001000  *
0x00011000  0x00001000  +
0x00012000  0x00002000  /
0x00014000  0x0000C000  +
131072      4096        ?
0x00021000  0x003DF000  +
EOF
expect 0 import "$WORK/map.txt" --format ddrescue -s "$WORK/dr.img" -o "$O"
expect 0 list -s "$WORK/dr.img" -o "$O" --json
[ "$(jq -c '[.entries[].origin_unit]' <<<"$OUT")" = '[8,16,18,19]' ] ||
    fail "import ddrescue (-, *, / bad; ? and + not): $OUT"
expect 0 import "$WORK/map.txt" --format ddrescue --include-nontried -s "$WORK/dr.img" -o "$O"
expect 0 list -s "$WORK/dr.img" -o "$O" --json
[ "$(jq -c '[.entries[].origin_unit]' <<<"$OUT")" = '[8,16,18,19,32]' ] ||
    fail "import ddrescue --include-nontried: $OUT"
expect 0 export --format ddrescue -s "$WORK/dr.img" -o "$O"
printf '%s\n' "$OUT" >"$WORK/map2.txt"
grep -q '^0x00008000  0x00001000  -$' "$WORK/map2.txt" || fail "export ddrescue: $OUT"
fresh dr2
expect 0 import "$WORK/map2.txt" --format ddrescue -s "$WORK/dr2.img" -o "$O"
# One after the other: both open (and lock) the same origin.
"$RC" list -s "$WORK/dr.img" -o "$O" --json | jq -c '[.entries[].origin_unit]' >"$WORK/l1"
"$RC" list -s "$WORK/dr2.img" -o "$O" --json | jq -c '[.entries[].origin_unit]' >"$WORK/l2"
diff "$WORK/l1" "$WORK/l2" || fail "ddrescue export -> import round trip differs"
if command -v ddrescuelog >/dev/null 2>&1; then
    ddrescuelog -s $((4 << 20)) -t "$WORK/map2.txt" >/dev/null ||
        fail "ddrescuelog rejects our mapfile"
fi
ok "ddrescue import (every status character) and export round trip"
for bad in '0x0 X 1' '0 +\n0x0 0x10 Z' '0 +\n0x0 0x10' '0 +\n0x0 0x10 - x' '0 +\n0xg 0x10 -'; do
    printf "# header\n$bad\n" >"$WORK/badmap.txt"
    expect 1 import "$WORK/badmap.txt" --format ddrescue -s "$WORK/dr.img" -o "$O"
    grep -q "badmap.txt:[23]:" <<<"$ERR" || fail "malformed mapfile \"$bad\": $ERR"
done
ok "malformed mapfile lines rejected with their line number"

# The table of dr.img did not change through the failed imports.
expect 0 list -s "$WORK/dr.img" -o "$O" --json
[ "$(jq .count <<<"$OUT")" = 5 ] || fail "failed imports changed the table: $OUT"

# ---- scan: paced, interrupted and resumed; a failing origin ------------------
fresh sc
"$RC" scan -s "$WORK/sc.img" -o "$O" --rate 1M --state "$WORK/scan.state" --no-progress \
    >"$WORK/scan1.out" 2>"$WORK/scan1.err" &
spid=$!
sleep 1.5
kill -INT "$spid"
wait "$spid"
st=$?
[ "$st" = 5 ] || fail "interrupted scan exited $st, want 5: $(cat "$WORK/scan1.err")"
grep -q -- "--resume" "$WORK/scan1.err" || fail "interrupted scan: $(cat "$WORK/scan1.err")"
grep -q "^scan: .*%.*MiB/s, ETA" "$WORK/scan1.err" || fail "no progress lines: $(cat "$WORK/scan1.err")"
next=$(sed -n 's/^next //p' "$WORK/scan.state")
[ -n "$next" ] && [ "$next" -gt 0 ] && [ "$next" -lt 8192 ] || fail "scan state: next=$next"
# A damaged number in the state file is refused, never read as a prefix.
cp "$WORK/scan.state" "$WORK/scan.keep"
sed -i 's/^next .*/next 12x/' "$WORK/scan.state"
expect 1 scan -s "$WORK/sc.img" -o "$O" --resume --state "$WORK/scan.state" --no-progress
grep -q "not a scan state file" <<<"$ERR" || fail "damaged state file: $ERR"
# So is a damaged list of bad units (strtoull read "3,4x,5" as 3, 4, 5).
for bad in "3,4x,5" "3,,5" "3," "-3"; do
    cp "$WORK/scan.keep" "$WORK/scan.state"
    sed -i "s/^bad .*/bad $bad/" "$WORK/scan.state"
    grep -qx "bad $bad" "$WORK/scan.state" || fail "no bad line in the state file"
    expect 1 scan -s "$WORK/sc.img" -o "$O" --resume --state "$WORK/scan.state" --no-progress
    grep -q "not a scan state file" <<<"$ERR" || fail "damaged bad list '$bad': $ERR"
done
mv "$WORK/scan.keep" "$WORK/scan.state"
expect 0 scan -s "$WORK/sc.img" -o "$O" --resume --state "$WORK/scan.state" --json --no-progress
[ "$(jq -c '[.complete, .start_lba, .end_lba, .read_units, .bad_units]' <<<"$OUT")" = \
  '[true,0,8192,1024,[]]' ] || fail "resumed scan: $OUT"
[ ! -e "$WORK/scan.state" ] || fail "state file left after a complete scan"
ok "scan paced at 1 MiB/s, stopped by SIGINT at LBA $next (exit 5), resumed to the end"

if nbdkit --filter=ddrescue null --dump-plugin >/dev/null 2>&1; then
    # A failing origin: nbdkit's ddrescue filter fails reads outside the
    # rescued ('+') areas of a mapfile.
    printf '%s\n' '# current_pos  current_status  current_pass' \
        '0x00000000     +               1' \
        '#      pos        size  status' \
        '0x00000000  0x00020000  +' \
        '0x00020000  0x00000200  -' \
        '0x00020200  0x00010E00  +' \
        '0x00031000  0x00002000  *' \
        '0x00033000  0x003CD000  +' >"$WORK/fail.map"
    osock=$WORK/failing.sock
    nbdkit -f --exit-with-parent -U "$osock" -P "$WORK/failing.pid" --filter=ddrescue \
        file "$O" ddrescue-mapfile="$WORK/fail.map" >"$WORK/failing.log" 2>&1 &
    E2E_PIDS+=("$!")
    for _ in $(seq 100); do [ -S "$osock" ] && break; sleep 0.1; done
    fresh fs
    rc scan -s "$WORK/fs.img" -o "nbd+unix:///?socket=$osock" --json --no-progress
    if [ "$RCODE" = 1 ] && grep -qi "libnbd\|not supported" <<<"$ERR"; then
        log "remap built without libnbd: failing-origin scan not tested"
    else
        [ "$RCODE" = 0 ] || fail "scan of the failing origin exited $RCODE: $ERR"
        [ "$(jq -c .bad_units <<<"$OUT")" = '[32,49,50]' ] || fail "scan found: $OUT"
        expect 0 list -s "$WORK/fs.img" -o "$O" --json
        [ "$(jq -c '[.entries[] | [.origin_unit, .state]]' <<<"$OUT")" = \
          '[[32,"pending"],[49,"pending"],[50,"pending"]]' ] || fail "after scan: $OUT"
        ok "scan of a failing origin found exactly units 32, 49, 50 and marked them pending"
    fi
else
    log "nbdkit ddrescue filter missing: failing-origin scan not tested"
fi

# ---- help and exit codes ------------------------------------------------------
expect 0 --help
grep -q "Exit:" <<<"$OUT" || fail "--help"
expect 2
ok "help"

E2E_RESULT=0
