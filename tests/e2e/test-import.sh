#!/bin/bash
# test-import.sh - remapctl import: one parser for every list, checked whole
# before anything changes (issue 10; SPEC 4.2).
#
# - smartctl JSON reports (tests/data/smartctl-ata.json, -nvme.json): the
#   LBAs of failed self-tests and media errors marked pending by default,
#   remapped with --remap, in the report's own sector size;
# - a list whose last entry lies past the origin (the 2^64 wrap of issue
#   10: "8" and "18446744073709551614" at block size 1) changes nothing;
# - a list larger than the spare's free units is refused with the numbers,
#   nothing changed;
# - NUL and control bytes are errors shown escaped with FILE:LINE;
# - the same badblocks file (comments, 0x, CRLF) means the same to the
#   plugin's badblocks= and to remapctl import;
# - online: import --control SOCK through a running plugin.
#
# Needs: nbdkit, jq.  Exit 0 pass, 1 fail, 77 skip.

. "$(dirname "$0")/lib/common.sh"
e2e_init test-import
e2e_require jq

RC=$REMAP_BUILD_DIR/remapctl
[ -x "$RC" ] || fail "$RC not found: build first"
DATA=$REMAP_SOURCE_DIR/tests/data
U=4096
O=$WORK/origin.img
make_file "$O" $((64 << 20)) zero

fresh() {  # fresh NAME [SPARE-BYTES]: a new spare for $O
    make_file "$WORK/$1.img" "${2:-$((1 << 20))}" zero
    "$RC" format "$O" "$WORK/$1.img" --unit $U >/dev/null || fail "format $1"
}
units() {  # units SPARE STATE: the origin units in that state
    "$RC" list -s "$1" -o "$O" --json |
        jq -c "[.entries[] | select(.state == \"$2\") | .origin_unit]"
}

# ---- smartctl ------------------------------------------------------------------
fresh st
expect 0 import "$DATA/smartctl-ata.json" --format smartctl -s "$WORK/st.img" -o "$O"
grep -q "2 bad LBA range(s), in sectors of 512 bytes" <<<"$ERR" || fail "smartctl ata: $ERR"
# LBA 1000-1001 (UNC errors, a failed self-test) -> unit 125; 123456 -> 15432.
[ "$(units "$WORK/st.img" pending)" = '[125,15432]' ] ||
    fail "smartctl ata, pending: $(units "$WORK/st.img" pending)"
[ "$(units "$WORK/st.img" mapped)" = '[]' ] || fail "smartctl ata remapped without --remap"
expect 0 import "$DATA/smartctl-ata.json" --format smartctl --remap --json -s "$WORK/st.img" -o "$O"
[ "$(jq -c '[.mode, .units, .changed]' <<<"$OUT")" = '["remap",2,2]' ] || fail "--remap --json: $OUT"
[ "$(units "$WORK/st.img" mapped)" = '[125,15432]' ] || fail "smartctl ata --remap"
ok "smartctl -x report (ATA): failed self-test and UNC LBAs pending, then remapped with --remap"

fresh nv
expect 0 import "$DATA/smartctl-nvme.json" --format smartctl -s "$WORK/nv.img" -o "$O"
grep -q "in sectors of 4096 bytes" <<<"$ERR" || fail "smartctl nvme: $ERR"
[ "$(units "$WORK/nv.img" pending)" = '[5000,5001]' ] ||
    fail "smartctl nvme: $(units "$WORK/nv.img" pending)"
ok "smartctl report (NVMe): media error and self-test LBAs in 4096-byte sectors"

expect 2 import "$DATA/smartctl-ata.json" --format smartctl --pending --remap -s "$WORK/nv.img" -o "$O"
head -c 300 "$DATA/smartctl-ata.json" >"$WORK/cut.json"
expect 1 import "$WORK/cut.json" --format smartctl -s "$WORK/nv.img" -o "$O"
grep -q "cut.json:[0-9]*:[0-9]*: the JSON ends too soon" <<<"$ERR" || fail "truncated report: $ERR"
echo '{"model_name": "x", "logical_block_size": 512}' >"$WORK/nolog.json"
expect 1 import "$WORK/nolog.json" --format smartctl -s "$WORK/nv.img" -o "$O"
grep -q "no self-test log and no error log" <<<"$ERR" || fail "report without logs: $ERR"
ok "a truncated report and one without logs are refused"

# ---- whole-file checks -------------------------------------------------------
fresh wr
printf '8\n18446744073709551614\n' >"$WORK/wrap.txt"
expect 1 import "$WORK/wrap.txt" --format badblocks --block-size 1 -s "$WORK/wr.img" -o "$O"
grep -q "Nothing was imported" <<<"$ERR" || fail "wrap: $ERR"
[ "$(units "$WORK/wr.img" mapped)" = '[]' ] || fail "wrap: unit 8 was remapped before the refusal"
ok "issue 10: 8 and 18446744073709551614 at block size 1 refused whole, unit 8 untouched"

fresh small $((256 << 10))
free=$("$RC" status -s "$WORK/small.img" -o "$O" --json | jq '.counters.spare_free_units // .spare_free_units')
[ -n "$free" ] && [ "$free" != null ] || fail "status has no spare_free_units"
seq 0 $((free)) >"$WORK/many.txt"          # free + 1 units of 4096 bytes
expect 1 import "$WORK/many.txt" --format badblocks --block-size 4096 -s "$WORK/small.img" -o "$O"
grep -q "needs $((free + 1)) free spare units, but the spare has $free" <<<"$ERR" ||
    fail "capacity: $ERR"
[ "$(units "$WORK/small.img" mapped)" = '[]' ] || fail "capacity: units remapped before the refusal"
ok "a list larger than the free spare units is refused with the numbers, nothing changed"

printf '10\n1\x002\n' >"$WORK/nul.txt"
expect 1 import "$WORK/nul.txt" --format badblocks --block-size 4096 -s "$WORK/wr.img" -o "$O"
grep -qF 'nul.txt:2: column 2: control byte \x00 (NUL)' <<<"$ERR" || fail "NUL: $ERR"
printf '10\n1\x1b[2J\n' >"$WORK/esc.txt"
expect 1 import "$WORK/esc.txt" --format badblocks --block-size 4096 -s "$WORK/wr.img" -o "$O"
grep -qF 'esc.txt:2: column 2: control byte \x1b' <<<"$ERR" || fail "ESC: $ERR"
grep -q $'\x1b' "$WORK/err" && fail "a raw escape byte reached the terminal"
[ "$(units "$WORK/wr.img" mapped)" = '[]' ] || fail "a refused list changed the table"
ok "NUL and control bytes refused, shown escaped with FILE:LINE"

# ---- one grammar for the plugin and remapctl -------------------------------------
printf '# from badblocks -b 4096\r\n40\r\n0x29   # forty-one\r\n\r\n40\r\n' >"$WORK/same.txt"
fresh pl
start_server pl -D remap.meta=1 -- "$O" spare="$WORK/pl.img" badblocks="$WORK/same.txt" \
    badblocks-block-size=4096
stop_server
fresh rc
expect 0 import "$WORK/same.txt" --format badblocks --block-size 4096 -s "$WORK/rc.img" -o "$O"
[ "$(units "$WORK/pl.img" mapped)" = '[40,41]' ] || fail "plugin badblocks=: $(units "$WORK/pl.img" mapped)"
[ "$(units "$WORK/rc.img" mapped)" = '[40,41]' ] || fail "remapctl import: $(units "$WORK/rc.img" mapped)"
ok "one badblocks file (comments, 0x, CRLF, a duplicate) means the same to badblocks= and import"

# ---- online ------------------------------------------------------------------------
fresh on
C=$WORK/ctl.sock
start_server on -- "$O" spare="$WORK/on.img" control="$C"
expect 0 import "$DATA/smartctl-ata.json" --format smartctl --control "$C"
grep -q "imported 2 bad range(s): 2 unit(s), 2 marked pending now" <<<"$OUT" || fail "online: $OUT"
expect 1 import "$WORK/wrap.txt" --format badblocks --block-size 1 --control "$C"
grep -q "Nothing was imported" <<<"$ERR" || fail "online wrap: $ERR"
expect 0 list --control "$C" --json
[ "$(jq -c '[.entries[] | [.origin_unit, .state]]' <<<"$OUT")" = '[[125,"pending"],[15432,"pending"]]' ] ||
    fail "online list: $OUT"
# A list that does not fit one request line: refused whole, exit 1.
seq 0 2 598 >"$WORK/sparse.txt"           # 300 separate units
expect 1 import "$WORK/sparse.txt" --format badblocks --block-size 4096 --control "$C"
grep -q "too many separate ranges for one control request" <<<"$ERR" || fail "long list: $ERR"
expect 0 list --control "$C" --json
[ "$(jq '.entries | length' <<<"$OUT")" = 2 ] || fail "long list changed the table: $OUT"
expect 2 import "$WORK/same.txt" --format badblocks --block-size 4096 --frob --control "$C"
stop_server
expect 4 import "$WORK/same.txt" --format badblocks --block-size 4096 --control "$C"
ok "import through the control socket: same parser, same checks; a list too long for one request refused (1); usage 2; no server 4"
E2E_RESULT=0
