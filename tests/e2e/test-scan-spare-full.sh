#!/bin/bash
# test-scan-spare-full.sh - `remapctl scan' reports every unit its reads
# found failing, also when the spare is full.
#
# A 36 KiB spare has 5 usable units; remap=0-4 fills it.  The origin fails
# reads of units 700 and 701 (rehearsal).  The engine cannot record them
# pending on the full spare and holds them pending in memory; the scan,
# online through the control socket, must still list them as bad, and as
# unrecorded (JSON and text), and status must count them pending.
#
# Needs: nbdkit, jq.  Exit 0 pass, 1 fail, 77 skip.

. "$(dirname "$0")/lib/common.sh"
e2e_init test-scan-spare-full
e2e_require jq

RC=$REMAP_BUILD_DIR/remapctl
[ -x "$RC" ] || fail "$RC not found: build first"
U=4096
O=$WORK/origin.img
S=$WORK/spare.img
C=$WORK/ctl.sock
make_file "$O" $((4 << 20)) random
make_file "$S" $((36 << 10)) zero

start_server srv "$O" spare="$S" format=yes remap=0-4 control="$C" \
    fail=read:$((700 * U))+$((2 * U)) read-retries=1 read-retry-delay=1
expect 0 status -c "$C" --json
[ "$(jq -c '[.counters.spare_free_units, .counters.reallocated_units]' <<<"$OUT")" = '[0,5]' ] ||
    fail "the spare is not full: $OUT"

expect 0 scan -u 690 20 -c "$C" --json --no-progress
[ "$(jq -c '[.complete, .read_units, .bad_units, .unrecorded_units]' <<<"$OUT")" = \
  '[true,20,[700,701],[700,701]]' ] || fail "scan with a full spare: $OUT"
ok "JSON: bad_units [700,701], both unrecorded"

expect 0 scan -u 690 20 -c "$C" --no-progress
grep -q "2 bad unit(s) now pending: 700,701" <<<"$OUT" &&
    grep -q "2 of them could not be recorded on the spare" <<<"$OUT" ||
    fail "scan (text) with a full spare: $OUT"
ok "text: the bad units, and that they are not recorded"

expect 0 status -c "$C" --json
[ "$(jq .counters.pending_units <<<"$OUT")" = 2 ] || fail "status after the scan: $OUT"
stop_server
ok "status counts them pending (in memory)"
E2E_RESULT=0
