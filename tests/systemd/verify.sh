#!/bin/bash
# tests/systemd/verify.sh UNITDIR - `systemd-analyze verify' on the
# configured units (build/systemd/remap@.service and remap@.socket).
#
# The templates are checked as an instance (remap@demo.*), as systemd
# would load them.  Pass means exit 0 AND no message at all: verify prints
# unknown keys and bad values as warnings and may still exit 0.  The man
# pages named in Documentation= are not installed in a build tree, so
# --man=no (podchecker checks the pages).  A unit with a misspelt key must
# fail the same check, or the check proves nothing.
#
# Exit 0 pass, 1 fail, 77 skip (no systemd-analyze).

set -u
src=${1:?usage: verify.sh UNITDIR}
command -v systemd-analyze >/dev/null 2>&1 || {
    echo "SKIP: systemd-analyze not installed"; exit 77; }
tmp=$(mktemp -d) || exit 1
trap 'rm -rf "$tmp"' EXIT

verify() {
    local out rc
    out=$(systemd-analyze verify --man=no "$@" 2>&1)
    rc=$?
    [ "$rc" = 0 ] && [ -z "$out" ] && return 0
    printf '%s\n' "$out"
    return 1
}

for u in service socket; do
    [ -s "$src/remap@.$u" ] || { echo "FAIL: $src/remap@.$u missing"; exit 1; }
    cp "$src/remap@.$u" "$tmp/remap@demo.$u"
done
grep -q '@[A-Z_]*@' "$tmp/remap@demo.service" &&
    { echo "FAIL: unconfigured @VAR@ left in remap@.service"; exit 1; }
if ! verify "$tmp/remap@demo.service" "$tmp/remap@demo.socket"; then
    echo "FAIL: systemd-analyze verify found problems (above)"
    exit 1
fi
echo "ok: systemd-analyze verify: remap@demo.service, remap@demo.socket clean"

# The check can fail: a misspelt key and a bad value.
mkdir "$tmp/bad"
sed 's/^ExecStart=/ExecStrat=/' "$tmp/remap@demo.service" >"$tmp/bad/remap@demo.service"
cp "$tmp/remap@demo.socket" "$tmp/bad/"
verify "$tmp/bad/remap@demo.service" "$tmp/bad/remap@demo.socket" >/dev/null &&
    { echo "FAIL: verify accepted a service with ExecStrat="; exit 1; }
sed 's/^SocketMode=.*/SocketMode=banana/' "$tmp/remap@demo.socket" >"$tmp/bad/remap@demo.socket"
cp "$tmp/remap@demo.service" "$tmp/bad/"
verify "$tmp/bad/remap@demo.service" "$tmp/bad/remap@demo.socket" >/dev/null &&
    { echo "FAIL: verify accepted SocketMode=banana"; exit 1; }
echo "ok: a misspelt key and a bad value are caught"
echo PASS
