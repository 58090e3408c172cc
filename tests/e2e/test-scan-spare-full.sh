#!/bin/bash
# test-scan-spare-full.sh - `remapctl scan' reports every unit its reads
# found failing, also when the spare is full.
#
# A 36 KiB spare has 3 usable units; remap=0-2 fills it.  The origin fails
# reads of units 700 and 701 (rehearsal).  Version 2 records pending units
# in pending-only places, which take no spare unit (docs/FORMAT.md 6.4), so
# a full spare still records them: the scan, online through the control
# socket, must list them as bad and as recorded (none unrecorded), status
# must count them pending, and after a restart they are still pending.
# (When the places run out too, pending units are held in memory only and
# the scan lists them as unrecorded: unit/test_control covers that.)
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

start_server srv "$O" spare="$S" format=yes remap=0-2 control="$C" \
    fail=read:$((700 * U))+$((2 * U)) read-retries=1 read-retry-delay=1
expect 0 status -c "$C" --json
[ "$(jq -c '[.counters.spare_free_units, .counters.reallocated_units]' <<<"$OUT")" = '[0,3]' ] ||
    fail "the spare is not full: $OUT"

expect 0 scan -u 690 20 -c "$C" --json --no-progress
[ "$(jq -c '[.complete, .read_units, .bad_units, .unrecorded_units]' <<<"$OUT")" = \
  '[true,20,[700,701],[]]' ] || fail "scan with a full spare: $OUT"
ok "JSON: bad_units [700,701], both recorded although the spare is full"

expect 0 status -c "$C" --json
[ "$(jq .counters.pending_units <<<"$OUT")" = 2 ] || fail "status after the scan: $OUT"
[ "$(jq .counters.spare_free_units <<<"$OUT")" = 0 ] || fail "pending marks took spare units: $OUT"
stop_server
ok "status counts them pending; no spare unit taken"

expect 0 status -s "$S" -o "$O" --json
[ "$(jq .counters.pending_units <<<"$OUT")" = 2 ] || fail "after a restart: $OUT"
ok "still pending after a restart (recorded on the spare)"
E2E_RESULT=0
