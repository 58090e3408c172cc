#!/bin/bash
# test-origin-identity.sh - the origin is checked by its identity, not only
# its size (SPEC 2.7, issue 9), through the plugin and remapctl:
#
# - a spare formatted for origin A (a file: its file system and inode) is
#   refused with B, a cp of A (same size, same bytes): nbdkit exits before
#   serving, with one error line naming both identities (A's inode as
#   recorded, B's as current) and both overrides;
# - origin-changed=accept starts it, serves B's data (and the unit that
#   was remapped on A's spare), and logs the warning; a bad value of
#   origin-changed= is refused;
# - remapctl refuses the same offline, names rebind, and takes
#   --accept-origin-change;
# - remapctl rebind -s SPARE -o B, then a plain start with B works without
#   the warning, and A is now the one refused (the record moved to B).
#
# Needs: nbdkit, qemu-io, stat, grep.  Exit 0 pass, 1 fail, 77 skip.

. "$(dirname "$0")/lib/common.sh"
e2e_init test-origin-identity
e2e_require qemu-io stat grep cp

[ -x "$RC" ] || fail "$RC not found: build first"
U=4096
A=$WORK/a.img
B=$WORK/b.img
SPARE=$WORK/spare.img
make_file "$A" $((8 << 20)) random
make_file "$SPARE" $((4 << 20)) zero

# ---- format for A, with a remapped unit and a known pattern ----------------
start_server fmt origin="$A" spare="$SPARE" format=yes remap=3
qio "$URI" "write -P 0x5a 0 $U" "write -P 0x6b $((3 * U)) $U"
stop_server
ok "formatted for a.img, unit 3 remapped, patterns written"

cp "$A" "$B" || fail "cp"
ino_a=$(stat -c %i "$A")
ino_b=$(stat -c %i "$B")
[ "$ino_a" != "$ino_b" ] || fail "cp gave the same inode?"

# ---- B is refused, naming both identities --------------------------------
refused() {   # refused LOG ORIGIN-PARAMS...: nbdkit must not start
    local log=$1
    shift
    timeout 120 nbdkit -U - "$PLUGIN" "$@" --run 'exit 0' >"$log.out" 2>"$log"
    local rc=$?
    [ "$rc" != 124 ] || fail "nbdkit hung: $*"
    [ "$rc" != 0 ] || fail "nbdkit started with $*: $(cat "$log")"
    [ "$(grep -c 'error:' "$log")" = 1 ] ||
        fail "expected one error line: $(cat "$log")"
}
refused "$WORK/refuse-b.log" origin="$B" spare="$SPARE"
E=$(grep 'error:' "$WORK/refuse-b.log")
grep -q "belongs to another origin" <<<"$E" || fail "no cause: $E"
grep -Eq "identity file:[^ ]*ino=$ino_a\b" <<<"$E" ||
    fail "message lacks a.img's identity (ino=$ino_a) as recorded: $E"
grep -Eq "is file:[^ ;]*ino=$ino_b\b" <<<"$E" ||
    fail "message lacks b.img's identity (ino=$ino_b) as current: $E"
grep -q "origin-changed=accept" <<<"$E" && grep -q "remapctl rebind" <<<"$E" ||
    fail "message names no override: $E"
ok "b.img (a cp of a.img) refused: ${E#*error: }"

refused "$WORK/bad-param.log" origin="$B" spare="$SPARE" origin-changed=maybe
grep -q "origin-changed=maybe: expected accept or refuse" "$WORK/bad-param.log" ||
    fail "origin-changed=maybe: $(cat "$WORK/bad-param.log")"
refused "$WORK/refuse-explicit.log" origin="$B" spare="$SPARE" origin-changed=refuse
grep -q "belongs to another origin" "$WORK/refuse-explicit.log" ||
    fail "origin-changed=refuse: $(cat "$WORK/refuse-explicit.log")"
ok "origin-changed=maybe refused; origin-changed=refuse is the default"

# ---- origin-changed=accept ------------------------------------------------
start_server accept origin="$B" spare="$SPARE" origin-changed=accept
qio "$URI" "read -P 0x5a 0 $U" "read -P 0x6b $((3 * U)) $U"
stop_server
grep -q "warning: origin $B is file:[^ ]*ino=$ino_b, but spare .* was formatted for file:[^ ]*ino=$ino_a; accepted as asked" \
    "$WORK/accept.log" || fail "no warning in the log: $(grep -i warn "$WORK/accept.log")"
ok "origin-changed=accept serves b.img (and the remapped unit), with a warning"

# ---- remapctl, offline -------------------------------------------------------
"$RC" status -s "$SPARE" -o "$B" >"$WORK/rc.out" 2>"$WORK/rc.err"
rc=$?
[ "$rc" = 1 ] || fail "remapctl status with b.img: exit $rc, wanted 1: $(cat "$WORK/rc.err")"
grep -q "belongs to another origin" "$WORK/rc.err" &&
    grep -q "remapctl rebind -s $SPARE -o $B" "$WORK/rc.err" &&
    grep -q -- "--accept-origin-change" "$WORK/rc.err" ||
    fail "remapctl status: $(cat "$WORK/rc.err")"
"$RC" status -s "$SPARE" -o "$B" --accept-origin-change >"$WORK/rc.out" 2>"$WORK/rc.err" ||
    fail "remapctl status --accept-origin-change: $(cat "$WORK/rc.err")"
ok "remapctl refuses b.img naming rebind, and accepts it when told"

# ---- rebind -------------------------------------------------------------------
start_server held origin="$A" spare="$SPARE"
"$RC" rebind -s "$SPARE" -o "$B" >"$WORK/rb.out" 2>"$WORK/rb.err"
rc=$?
stop_server
[ "$rc" = 3 ] || fail "rebind while a server holds the spare: exit $rc, wanted 3: $(cat "$WORK/rb.err")"
"$RC" rebind -s "$SPARE" >"$WORK/rb.out" 2>"$WORK/rb.err"
[ $? = 2 ] || fail "rebind without -o: $(cat "$WORK/rb.err")"
"$RC" rebind -s "$SPARE" -o "$B" >"$WORK/rb.out" 2>"$WORK/rb.err" ||
    fail "rebind: $(cat "$WORK/rb.err")"
grep -Eq "identity file:[^ ]*ino=$ino_b\b" "$WORK/rb.out" || fail "rebind said: $(cat "$WORK/rb.out")"
ok "rebind refused while served (exit 3), then: $(cat "$WORK/rb.out")"

"$RC" check "$SPARE" >"$WORK/check.out" 2>&1 || fail "check after rebind: $(cat "$WORK/check.out")"
start_server plain origin="$B" spare="$SPARE"
qio "$URI" "read -P 0x5a 0 $U" "read -P 0x6b $((3 * U)) $U"
stop_server
! grep -q "accepted as asked" "$WORK/plain.log" || fail "a plain start after rebind still warns"
ok "after rebind: check clean, b.img starts without origin-changed=, no warning"

refused "$WORK/refuse-a.log" origin="$A" spare="$SPARE"
E=$(grep 'error:' "$WORK/refuse-a.log")
grep -Eq "identity file:[^ ]*ino=$ino_b\b" <<<"$E" && grep -Eq "is file:[^ ;]*ino=$ino_a\b" <<<"$E" ||
    fail "a.img after rebind: $E"
ok "a.img is now the one refused (the record names b.img)"

# A spare of another size cannot be rebound to: rebind is for the same data.
make_file "$WORK/c.img" $((4 << 20)) random
"$RC" rebind -s "$SPARE" -o "$WORK/c.img" >"$WORK/rb.out" 2>"$WORK/rb.err"
[ $? = 1 ] && grep -q "formatted for an origin of $((8 << 20)) bytes" "$WORK/rb.err" ||
    fail "rebind to an origin of another size: $(cat "$WORK/rb.err")"
ok "rebind to an origin of another size refused"
E2E_RESULT=0
