#!/bin/bash
# test-control.sh - remapctl online, through the plugin's control socket.
#
# - control=PATH creates a socket of mode 0600 that is gone after nbdkit
#   exits; a stale socket left by a crash is replaced; a path that is not a
#   socket is refused;
# - remap through the socket, then qemu-io writes and reads the unit: the
#   data lands on the spare unit that `list' names, not on the origin;
# - unmap through the socket copies the data back to the origin;
# - status counters change as units fail (pending through the socket, a
#   write to the pending unit remaps it) and match the table;
# - the online and offline outputs are the same (list --json);
# - offline commands are refused while the server runs (exit 3).
#
# Skips (77) until the plugin is built with the control socket
# (--dump-plugin shows remap_control=yes).
#
# Needs: nbdkit, qemu-io, jq, python3.  Exit 0 pass, 1 fail, 77 skip.

. "$(dirname "$0")/lib/common.sh"
e2e_init test-control
e2e_require qemu-io jq dd cmp stat python3

nbdkit "$PLUGIN" --dump-plugin 2>/dev/null | grep -q '^remap_control=yes$' ||
    skip "the plugin has no control socket yet (--dump-plugin lacks remap_control=yes)"
RC=$REMAP_BUILD_DIR/remapctl
[ -x "$RC" ] || fail "$RC not found: build first"
U=4096

O=$WORK/origin.img
S=$WORK/spare.img
C=$WORK/ctl.sock
make_file "$O" $((4 << 20)) random
cp "$O" "$WORK/ref.img"
make_file "$S" $((1 << 20)) zero

start_server srv "$O" spare="$S" format=yes unit=$U control="$C"
[ -S "$C" ] || fail "control socket $C not created"
mode=$(stat -c %a "$C")
[ "$mode" = 600 ] || fail "control socket mode is $mode, want 600"
ok "control socket created with mode 0600"

expect 0 status -c "$C" --json
[ "$(jq -r .state <<<"$OUT")" = healthy ] || fail "status: $OUT"
[ "$(jq .counters.reallocated_units <<<"$OUT")" = 0 ] || fail "status: $OUT"
events0=$(jq .counters.reallocation_events <<<"$OUT")
expect 0 status -c "$C"
grep -q "state:       healthy" <<<"$OUT" || fail "status (human): $OUT"
expect 3 status -s "$S" -o "$O"
grep -q -- "--control" <<<"$ERR" || fail "busy message: $ERR"
ok "status online; offline refused while the server runs"

# ---- remap through the socket, then data through NBD -------------------------
expect 0 remap 80 8 -c "$C" --json              # unit 10
[ "$(jq -r '.results[0].result' <<<"$OUT")" = remapped ] || fail "remap: $OUT"
s10=$(jq '.results[0].spare_unit' <<<"$OUT")
same_bytes "$S" $((s10 * U)) "$WORK/ref.img" $((10 * U)) $U ||
    fail "remap did not copy unit 10 to spare unit $s10"
qio "$URI" "write -P 0xab $((10 * U)) $U" "flush" "read -P 0xab $((10 * U)) $U"
pattern_file "$WORK/ab" 0xab $U
same_bytes "$S" $((s10 * U)) "$WORK/ab" 0 $U || fail "the write did not land on spare unit $s10"
same_bytes "$O" $((10 * U)) "$WORK/ref.img" $((10 * U)) $U || fail "the origin's unit 10 was written"
ok "remap via the socket: qemu-io's write lands on spare unit $s10, origin untouched"

expect 0 list -c "$C" --json
[ "$(jq -c '[.entries[] | [.origin_unit, .spare_unit, .state]]' <<<"$OUT")" = "[[10,$s10,\"mapped\"]]" ] ||
    fail "list online: $OUT"

# ---- failures change the counters ------------------------------------------------
expect 0 pending -u 20 -c "$C"
expect 0 status -c "$C" --json
[ "$(jq .counters.pending_units <<<"$OUT")" = 1 ] || fail "pending_units: $OUT"
[ "$(jq -r '.conditions | index("pending-units") != null' <<<"$OUT")" = true ] || fail "conditions: $OUT"
qio "$URI" "write -P 0xcd $((20 * U)) $U" "flush"
expect 0 status -c "$C" --json
[ "$(jq .counters.pending_units <<<"$OUT")" = 0 ] || fail "pending after write: $OUT"
[ "$(jq .counters.reallocated_units <<<"$OUT")" = 2 ] || fail "reallocated after write: $OUT"
[ "$(jq .counters.reallocation_events <<<"$OUT")" -gt "$events0" ] || fail "events: $OUT"
expect 0 lookup -u 20 -c "$C" --json
[ "$(jq -r .state <<<"$OUT")" = mapped ] || fail "unit 20: $OUT"
ok "pending unit counted, then remapped by a write; counters follow"

# ---- unmap copies back -------------------------------------------------------------
expect 0 unmap 80 8 -c "$C"
grep -q "unit 10: copied-back" <<<"$OUT" || fail "unmap: $OUT"
same_bytes "$O" $((10 * U)) "$WORK/ab" 0 $U || fail "unmap did not copy unit 10 back to the origin"
qio "$URI" "read -P 0xab $((10 * U)) $U"
expect 0 list -c "$C" --json
online=$(jq -c '[.entries[] | [.origin_unit, .spare_unit, .state]]' <<<"$OUT")
[ "$online" = "[[20,$(jq '.entries[0].spare_unit' <<<"$OUT"),\"mapped\"]]" ] || fail "after unmap: $OUT"
ok "unmap via the socket copied unit 10 back to the origin"

expect 0 scan -c "$C" --json --no-progress
[ "$(jq -c '[.complete, .end_lba, .bad_units]' <<<"$OUT")" = '[true,8192,[]]' ] || fail "online scan: $OUT"
[ "$(jq '.read_units + .skipped_units' <<<"$OUT")" = 1024 ] || fail "online scan units: $OUT"
[ "$(jq .skipped_units <<<"$OUT")" = 1 ] || fail "online scan skipped: $OUT"
ok "online scan of the whole origin (remapped unit 20 skipped)"

expect 2 remap 999999 -c "$C"
grep -q "past the end" <<<"$ERR" || fail "error over the socket: $ERR"
expect 2 unmap -u 20 -c "$C" --bogus
grep -q "unknown option" <<<"$ERR" || fail "usage error over the socket: $ERR"
python3 -c '
import socket, sys
s = socket.socket(socket.AF_UNIX); s.connect(sys.argv[1])
s.sendall(b"status --json\n"); s.shutdown(socket.SHUT_WR)
d = b""
while True:
    b = s.recv(65536)
    if not b: break
    d += b
# Frames "D <n>\n" + n bytes, then the status line.
body = b""
while d.startswith(b"D "):
    head, rest = d.split(b"\n", 1)
    n = int(head[2:])
    body += rest[:n]
    d = rest[n:]
assert d == b"OK\n", d[:80]
assert body.startswith(b"{") and body.endswith(b"}\n"), body[:80]
' "$C" || fail "raw protocol: D frames, then the OK line"
ok "errors and the raw protocol"

stop_server
[ ! -e "$C" ] || fail "control socket $C still exists after nbdkit exited"
ok "control socket removed at exit"
expect 0 list -s "$S" -o "$O" --json
offline=$(jq -c '[.entries[] | [.origin_unit, .spare_unit, .state]]' <<<"$OUT")
[ "$online" = "$offline" ] || fail "online list $online != offline list $offline"
ok "online and offline list agree"

# ---- stale socket replaced, non-socket refused -------------------------------------
python3 -c 'import socket,sys; s=socket.socket(socket.AF_UNIX); s.bind(sys.argv[1])' "$C"
[ -S "$C" ] || fail "could not make a stale socket"
start_server srv2 "$O" spare="$S" control="$C"
expect 0 status -c "$C" --json
stop_server
[ ! -e "$C" ] || fail "socket left after the second server"
ok "a stale socket is replaced"
echo data >"$C"
if nbdkit -f -U "$WORK/x.sock" "$PLUGIN" "$O" spare="$S" control="$C" >"$WORK/nonsock.log" 2>&1; then
    fail "nbdkit started with control= pointing at a regular file"
fi
grep -q "not a socket" "$WORK/nonsock.log" || fail "message: $(cat "$WORK/nonsock.log")"
[ "$(cat "$C")" = data ] || fail "the regular file was touched"
ok "control= refuses a path that is not a socket"

# ---- online scan of a failing origin (rehearsal), counters change ----------------
rm -f "$C"
make_file "$WORK/fo.img" $((4 << 20)) random
make_file "$WORK/fs.img" $((1 << 20)) zero
start_server srv3 "$WORK/fo.img" spare="$WORK/fs.img" format=yes control="$C" \
    fail=read:$((100 * U + 512))+512 fail=read:$((700 * U))+$((2 * U)) \
    read-retries=1 read-retry-delay=1
expect 0 status -c "$C" --json
[ "$(jq .counters.pending_units <<<"$OUT")" = 0 ] || fail "pending before the scan: $OUT"
expect 0 scan -c "$C" --json --no-progress
[ "$(jq -c .bad_units <<<"$OUT")" = '[100,700,701]' ] || fail "online scan found: $OUT"
expect 0 status -c "$C" --json
[ "$(jq .counters.pending_units <<<"$OUT")" = 3 ] || fail "pending after the scan: $OUT"
[ "$(jq '.counters.read_errors > 0 and .counters.retries > 0' <<<"$OUT")" = true ] ||
    fail "read error counters after the scan: $OUT"
expect 0 list -c "$C" --json
[ "$(jq -c '[.entries[] | [.origin_unit, .state]]' <<<"$OUT")" = \
  '[[100,"pending"],[700,"pending"],[701,"pending"]]' ] || fail "list after scan: $OUT"
qio "$URI" "write -P 0x5c $((700 * U)) $((2 * U))" "read -P 0x5c $((700 * U)) $((2 * U))"
expect 0 status -c "$C" --json
[ "$(jq -c '[.counters.pending_units, .counters.reallocated_units]' <<<"$OUT")" = '[1,2]' ] ||
    fail "rewriting pending units 700-701 should remap them: $OUT"
stop_server
ok "online scan found exactly the failing units 100, 700, 701; a rewrite remapped two of them"

E2E_RESULT=0
