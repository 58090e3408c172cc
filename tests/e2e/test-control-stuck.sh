#!/bin/bash
# test-control-stuck.sh - the control socket of a real nbdkit with stuck
# clients (admin/server.c).
#
# - a client asks for a large reply (export --format badblocks
#   --block-size 1 with 100 remapped units: about 2.7 MB) and never reads
#   it: other clients are served meanwhile, and data still flows;
# - 16+ clients connect and send nothing: others are still served;
# - SIGTERM while those clients are stuck: nbdkit exits within 2 s, with
#   status 0, and removes the socket;
# - origin and spare given as hard links to one file: refused with "origin
#   and spare are the same file".
#
# Needs: nbdkit, qemu-io, python3.  Exit 0 pass, 1 fail, 77 skip.

. "$(dirname "$0")/lib/common.sh"
e2e_init test-control-stuck
e2e_require qemu-io python3

RC=$REMAP_BUILD_DIR/remapctl
[ -x "$RC" ] || fail "$RC not found: build first"
U=4096
O=$WORK/origin.img
S=$WORK/spare.img
C=$WORK/ctl.sock
make_file "$O" $((4 << 20)) random
make_file "$S" $((1 << 20)) zero

start_server srv "$O" spare="$S" format=yes unit=$U control="$C"
expect 0 remap -u 0 100 -c "$C"

# The stuck clients live in one python process: one asks for the large
# reply and never reads, 20 send nothing.  It prints "ready" once they are
# all connected, then sleeps until killed.
python3 - "$C" >"$WORK/stuck.out" 2>&1 <<'PY' &
import socket, sys, time
path = sys.argv[1]
big = socket.socket(socket.AF_UNIX); big.connect(path)
big.sendall(b"export --format badblocks --block-size 1\n")
silent = []
for _ in range(20):
    s = socket.socket(socket.AF_UNIX); s.connect(path); silent.append(s)
print("ready", flush=True)
time.sleep(60)
PY
STUCK=$!
on_exit "kill $STUCK 2>/dev/null"
for _ in $(seq 50); do grep -q ready "$WORK/stuck.out" && break; sleep 0.1; done
grep -q ready "$WORK/stuck.out" || fail "stuck clients did not connect: $(cat "$WORK/stuck.out")"
sleep 0.3

t0=$(date +%s%N)
expect 0 status -c "$C" --json
expect 0 lookup -u 5 -c "$C" --json
t1=$(date +%s%N)
ms=$(( (t1 - t0) / 1000000 ))
[ "$ms" -lt 2000 ] || fail "two commands took $ms ms beside the stuck clients"
qio "$URI" "write -P 0x5a 0 $U" "read -P 0x5a 0 $U"
ok "a client stuck on a 2.7 MB reply and 20 silent ones: others served in $ms ms, data flows"

t0=$(date +%s%N)
stop_server
t1=$(date +%s%N)
ms=$(( (t1 - t0) / 1000000 ))
[ "$ms" -lt 2500 ] || fail "nbdkit took $ms ms to exit after SIGTERM with stuck control clients"
[ ! -e "$C" ] || fail "control socket left behind"
ok "SIGTERM with stuck control clients: nbdkit exited in $ms ms, status 0, socket removed"
kill "$STUCK" 2>/dev/null

# ---- origin and spare are one file ------------------------------------------
ln "$O" "$WORK/origin-link.img"
if nbdkit -f -U "$WORK/x.sock" "$PLUGIN" "$O" spare="$WORK/origin-link.img" \
        >"$WORK/same.log" 2>&1; then
    fail "nbdkit started with origin and spare hard links to one file"
fi
grep -q "origin and spare are the same file" "$WORK/same.log" ||
    fail "hard links: $(cat "$WORK/same.log")"
grep -q "in use by another process" "$WORK/same.log" &&
    fail "hard links reported as another process: $(cat "$WORK/same.log")"
ok "origin and spare as hard links: refused as the same file"

E2E_RESULT=0
