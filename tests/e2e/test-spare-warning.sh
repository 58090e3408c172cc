#!/bin/bash
# test-spare-warning.sh - the plugin logs the low-spare warning without
# debug flags, once per crossing of 10 % and of 1 % free.
#
# A server with a small spare remaps units through the control socket in
# steps; its stderr (nbdkit_error lines, shown without -v) must hold
# exactly one "under 10 %" line once free < 10 %, and exactly one "under
# 1 %" line once free < 1 %, however many remaps follow.
#
# Needs: nbdkit, jq.  Exit 0 pass, 1 fail, 77 skip.

. "$(dirname "$0")/lib/common.sh"
e2e_init test-spare-warning
e2e_require jq
nbdkit "$PLUGIN" --dump-plugin 2>/dev/null | grep -q '^remap_control=yes$' ||
    skip "the plugin has no control socket"
O=$WORK/origin.img
S=$WORK/spare.img
C=$WORK/ctl.sock
make_file "$O" $((4 << 20)) zero
make_file "$S" $((1 << 20)) zero
start_server srv "$O" spare="$S" format=yes unit=4096 control="$C"
L=$WORK/srv.log
# Lines nbdkit prints for nbdkit_error, not debug lines.
warnings() { grep -v 'debug:' "$L" | grep -c "remap: warning: spare .* under $1"; }

expect 0 status -c "$C" --json
usable=$(jq .counters.spare_usable_units <<<"$OUT")
[ "$usable" -gt 100 ] || fail "want more than 100 usable units, got $usable"
# Free 10 % + 1: still quiet.
n=$((usable - usable / 10 - 1))
expect 0 remap -c "$C" -u 0 "$n"
[ "$(warnings '10 %')" = 0 ] || fail "warned above 10 % free"
# Under 10 %, several remaps in small steps: one warning.
u=$n
for _ in 1 2 3 4; do expect 0 remap -c "$C" -u $u 2; u=$((u + 2)); done
[ "$(warnings '10 %')" = 1 ] || fail "want one 10 % warning, got $(warnings '10 %')"
[ "$(warnings '1 %')" = 0 ] || fail "warned under 1 % too early"
ok "one warning at the 10 % crossing (without -v), none per allocation"
# Fill to the end: one more warning, then ENOSPC adds none.
expect 0 status -c "$C" --json
free=$(jq .counters.spare_free_units <<<"$OUT")
expect 0 remap -c "$C" -u $u "$free"
u=$((u + free))
expect 1 remap -c "$C" -u $u 1
[ "$(warnings '1 %')" = 1 ] || fail "want one 1 % warning, got $(warnings '1 %')"
[ "$(warnings '10 %')" = 1 ] || fail "the 10 % warning repeated"
grep -v 'debug:' "$L" | grep -q "replace the origin disk now" || fail "the 1 % warning does not say what to do"
ok "one warning at the 1 % crossing; a full spare adds none"
stop_server
E2E_RESULT=0
