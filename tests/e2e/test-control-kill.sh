#!/bin/bash
# test-control-kill.sh - nbdkit killed (SIGKILL, then SIGTERM) while a
# control command changes a range of units: at reopen the table is
# consistent (check: clean), every unit the command reported done is in
# the state it said, no unit is half-done, and the data reads back.
#
# Needs: nbdkit, jq, qemu-io.  Exit 0 pass, 1 fail, 77 skip.

. "$(dirname "$0")/lib/common.sh"
e2e_init test-control-kill
e2e_require jq qemu-io

RC=$REMAP_BUILD_DIR/remapctl
[ -x "$RC" ] || fail "$RC not found: build first"
U=4096
O=$WORK/origin.img
S=$WORK/spare.img
C=$WORK/ctl.sock
N=400
make_file "$O" $((4 << 20)) random
make_file "$S" $((4 << 20)) zero
cp "$O" "$WORK/origin.orig"
expect 0 format "$O" "$S" --unit $U

round() {                       # SIGNAL COMMAND...: kill during COMMAND
  local sig=$1; shift
  start_server srv "$O" spare="$S" control="$C"
  "$RC" "$@" -c "$C" >"$WORK/cmd.out" 2>"$WORK/cmd.err" &
  local cmd=$!
  # Kill once 10 units changed (a unit's commit takes a few ms: 400 take
  # a while; remapctl's stdout is a file, so count units in the table).
  local n n0=
  for _ in $(seq 500); do
    n=$("$RC" status -c "$C" --json 2>/dev/null |
        jq -r '.counters.reallocated_units' 2>/dev/null)
    [ -n "$n" ] && [ -z "$n0" ] && n0=$n
    if [ -n "$n" ]; then
      case $1 in
        remap) [ "$n" -ge $((n0 + 10)) ] && break ;;
        unmap) [ "$n" -le $((n0 - 10)) ] && break ;;
      esac
    fi
    kill -0 $cmd 2>/dev/null || break
    sleep 0.01
  done
  log "$sig at ${n:-?} remapped units"
  kill -"$sig" "$SERVER_PID"
  wait "$SERVER_PID" 2>/dev/null
  log "server gone"
  wait $cmd
  local rc=$?
  rm -f "$C"
  # A kill between the copies of a commit leaves older copies stale:
  # repairable (every block has a valid copy), never unusable.
  rc check "$S" --json
  case $(jq -r .verdict <<<"$OUT") in
    clean|repairable) ;;
    *) fail "$sig during $*: $OUT" ;;
  esac
  expect 0 repair "$S" "$O"
  expect 0 check "$S" --json
  [ "$(jq -r .verdict <<<"$OUT")" = clean ] || fail "$sig during $*: $OUT"
  expect 0 list -s "$S" -o "$O" --json
  LIST=$OUT
  # Every unit the command reported done is in the state it said.
  jq -r '.entries[] | "\(.origin_unit) \(.state)"' <<<"$LIST" >"$WORK/states"
  local bad
  bad=$(awk 'NR == FNR { st[$1] = $2; next }
             $1 == "unit" {
               u = $2; sub(":", "", u)
               if ($3 == "remapped" || $3 == "already-remapped") want = "mapped"
               else if ($3 == "copied-back" || $3 == "not-remapped") want = "free"
               else next
               got = (u in st) ? st[u] : "free"
               if (got != want) print "unit " u " reported " $3 ", is " got
             }' "$WORK/states" "$WORK/cmd.out")
  [ -z "$bad" ] || fail "$sig during $*: $bad"
  local done
  done=$(grep -c '^unit ' "$WORK/cmd.out")
  [ "$rc" != 0 ] || [ "$done" = "$N" ] || fail "$sig during $*: exit 0 after $done of $N units"
  # SIGTERM: the client is told which units were done before the stop.
  if [ "$sig" = TERM ] && [ "$rc" != 0 ]; then
    [ "$done" -gt 0 ] || fail "TERM during $*: no unit reported: $(cat "$WORK/cmd.out" "$WORK/cmd.err")"
    grep -q "stopped after $done of $N units" "$WORK/cmd.err" ||
      fail "TERM during $*: $done reported; $(cat "$WORK/cmd.err")"
  fi
  log "$sig during $*: exit $rc after $done of $N units reported"
}
round KILL remap -u 0 $N
round TERM remap -u 0 $N
expect 0 remap -u 0 $N -s "$S" -o "$O"
round TERM unmap -u 0 $N
expect 0 remap -u 0 $N -s "$S" -o "$O"
round KILL unmap -u 0 $N
ok "nbdkit killed during remap/unmap ranges: table clean, reported units as said"

# The data: the origin image, through the remapper, is what it was.
start_server srv "$O" spare="$S"
qio "$URI" "read -v 0 $U" >/dev/null
nbdcopy_ok=0
if command -v nbdcopy >/dev/null; then
  nbdcopy "$URI" "$WORK/readback.img" && nbdcopy_ok=1
fi
stop_server
if [ $nbdcopy_ok = 1 ]; then
  cmp "$WORK/readback.img" "$WORK/origin.orig" || fail "data changed after the kills"
  ok "data reads back unchanged"
fi

E2E_RESULT=0
