#!/bin/bash
# test-exit-codes.sh - remapctl's exit statuses (remapctl.pod, EXIT STATUS):
# a script can tell each outcome apart.
#
#   0 ok                     1 the operation failed (spare full)
#   2 usage error, and nothing changed
#   3 held by a running server        4 control socket unusable
#   5 scan stopped (resumable)        6 spare unusable (check, repair)
#
# Needs: nbdkit, jq.  Exit 0 pass, 1 fail, 77 skip.

. "$(dirname "$0")/lib/common.sh"
e2e_init test-exit-codes
e2e_require jq dd

RC=$REMAP_BUILD_DIR/remapctl
[ -x "$RC" ] || fail "$RC not found: build first"
U=4096
O=$WORK/origin.img
S=$WORK/spare.img
make_file "$O" $((4 << 20)) random
make_file "$S" $((1 << 20)) zero
expect 0 format "$O" "$S" --unit $U

# 2: usage errors change nothing.
expect 0 list -s "$S" -o "$O" --json
before=$OUT
expect 2 remap -u 3 -s "$S" -o "$O" --bogus
grep -q "unknown option --bogus" <<<"$ERR" || fail "usage message: $ERR"
grep -q "remap: remap:" <<<"$ERR" && fail "command named twice: $ERR"
expect 2 remap 999999999 -s "$S" -o "$O"
grep -q "past the end" <<<"$ERR" || fail "range message: $ERR"
expect 2 frobnicate -s "$S"
expect 0 list -s "$S" -o "$O" --json
[ "$OUT" = "$before" ] || fail "a usage error changed the table: $OUT"
ok "2: usage errors, nothing changed"

# 1: the operation failed (the spare is full).
expect 0 status -s "$S" -o "$O" --json
usable=$(jq .counters.spare_usable_units <<<"$OUT")
expect 0 remap -u 0 "$usable" -s "$S" -o "$O"
expect 1 remap -u 1000 -s "$S" -o "$O"
grep -q "spare .* is full" <<<"$ERR" || fail "full message: $ERR"
grep -q ": :" <<<"$ERR" && fail "doubled separator: $ERR"
ok "1: remap on a full spare"

# 3 and 4: busy files, no server on the socket.
C=$WORK/ctl.sock
start_server srv "$O" spare="$S" control="$C"
expect 3 status -s "$S" -o "$O"
expect 0 status -c "$C" --json
# 4 too when the server refuses a client (64 connections sending their
# request already): the command was not run.  It was 1, "failed", the
# same as a command that ran and failed with EBUSY.
silent_clients() {             # 64 connections that send nothing
  python3 - "$C" >"$WORK/silent.out" 2>&1 <<'PY' &
import socket, sys, time
silent = []
for _ in range(64):
    s = socket.socket(socket.AF_UNIX); s.connect(sys.argv[1]); silent.append(s)
print("ready", flush=True)
time.sleep(20)
PY
  SILENT=$!
  on_exit "kill $SILENT 2>/dev/null"
  for _ in $(seq 50); do grep -q ready "$WORK/silent.out" && break; sleep 0.1; done
  sleep 0.3
}
if command -v python3 >/dev/null; then
  silent_clients
  expect 4 status -c "$C"
  grep -q "too many control connections" <<<"$ERR" || fail "busy message: $ERR"
  kill $SILENT; wait $SILENT 2>/dev/null
  sleep 0.3
  expect 0 status -c "$C" --json
  # The same refusal in the middle of a scan (a chunk's request): 4.
  "$RC" scan -c "$C" --rate 256K --no-progress >"$WORK/scan.out" \
    2>"$WORK/scan.err" &
  SCAN=$!
  sleep 0.6
  silent_clients
  wait $SCAN
  RCODE=$?
  kill $SILENT; wait $SILENT 2>/dev/null
  [ "$RCODE" = 4 ] || fail "scan refused mid-way exited $RCODE, want 4: $(cat "$WORK/scan.err")"
  grep -q "too many control connections" "$WORK/scan.err" ||
    fail "scan busy message: $(cat "$WORK/scan.err")"
  sleep 0.3
fi
stop_server
expect 4 status -c "$WORK/nobody.sock"
grep -q "cannot connect" <<<"$ERR" || fail "socket message: $ERR"
ok "3: held by a running server; 4: no server on the socket"

# 5: a scan stopped by SIGINT.
make_file "$WORK/s2.img" $((1 << 20)) zero
expect 0 format "$O" "$WORK/s2.img" --unit $U
"$RC" scan -s "$WORK/s2.img" -o "$O" --rate 256K --no-progress \
    >"$WORK/scan.out" 2>"$WORK/scan.err" &
pid=$!
sleep 1
kill -INT $pid
wait $pid
rc=$?
[ "$rc" = 5 ] || fail "stopped scan exited $rc, want 5: $(cat "$WORK/scan.err")"
ok "5: scan stopped by SIGINT"

# 6: an unusable spare (every metadata copy zeroed), apart from 2.
cp "$WORK/s2.img" "$WORK/dead.img"
dd if=/dev/zero of="$WORK/dead.img" bs=64K count=16 conv=notrunc status=none
expect 6 check "$WORK/dead.img"
expect 6 check "$WORK/dead.img" --json
[ "$(jq .exit <<<"$OUT")" = 6 ] || fail "check --json exit: $OUT"
expect 6 repair "$WORK/dead.img" "$O"
expect 2 check "$WORK/dead.img" --bogus
ok "6: unusable spare (check, repair); a typo is still 2"

E2E_RESULT=0
