#!/bin/bash
# test-flush-failure.sh - a failed flush is never forgotten (SPEC 3.10,
# docs/ERRORS.md).
#
# The rehearsal origin fails one flush, once (fail-file=, armed after a
# first write and flush succeeded).  The client's FLUSH fails with EIO;
# so does every later FLUSH and every FUA write, although the
# origin's flushes work again: Linux reports a failed write-back only once,
# so the writes acknowledged before it may be gone and no later flush may
# claim otherwise.  Plain writes and reads go on.  The server logs the
# failure naming the flush.  After a restart flushes succeed again, and
# no unit changed state.
#
# Exit 0 pass, 1 fail, 77 skip.

. "$(dirname "$0")/lib/common.sh"
e2e_init test-flush-failure
e2e_require qemu-io cmp

U=4096
ORIGIN=$WORK/origin.img
SPARE=$WORK/spare.img
make_file "$ORIGIN" $((4 << 20)) random
make_file "$SPARE" $((1 << 20)) zero
exit_counters() { sed -n 's/.*remap: exit: //p' "$1" | tail -n 1; }

# qio_nf CMD...: like qio, with qemu's cache=unsafe: qemu-io's default
# (writethrough) follows every write with a flush, which would fail here;
# with unsafe it does not, and the flush it may send when it closes the
# image does not change its result.  "write -f" still sends FUA.
qio_nf() {
    local out c args=()
    for c in "$@"; do args+=(-c "$c"); done
    out=$(qemu-io -f raw -t unsafe "${args[@]}" "$URI" 2>&1) &&
        ! printf '%s\n' "$out" | grep -Eqi 'error|failed|mismatch' || {
        printf '%s\n' "$out" | tail -n 20
        fail "qemu-io: $*"
    }
}

# flush_result: qemu-io's exit status for one FLUSH (qemu-io prints
# nothing when a flush fails; its status says it).
flush_result() { qemu-io -f raw -c flush "$URI" >/dev/null 2>&1; echo $?; }

FF=$WORK/faults
start_server a origin="$ORIGIN" spare="$SPARE" format=yes fail-file="$FF"
qio "$URI" "write -P 0x81 $((5 * U)) $U" "flush"
set_fail_rules a "$FF" "flush:0,times=1"
[ "$(flush_result)" != 0 ] || fail "the failed flush was not reported"
grep -q "error: origin .*flush failed: Input/output error" "$WORK/a.log" ||
    fail "the server did not report the failed flush with EIO"
ok "the origin's flush fails once: the client's FLUSH fails with EIO"
[ "$(flush_result)" != 0 ] ||
    fail "a later FLUSH succeeded although an earlier one failed"
out=$(qemu-io -f raw -t unsafe -c "write -f -P 0x82 $((6 * U)) $U" "$URI" 2>&1)
printf '%s\n' "$out" | grep -q "Input/output error" ||
    { printf '%s\n' "$out"; fail "a FUA write did not fail"; }
ok "every later FLUSH and FUA write fails too"
qio_nf "write -P 0x83 $((7 * U)) $U" "read -P 0x83 $((7 * U)) $U" \
    "read -P 0x81 $((5 * U)) $U"
ok "plain writes and reads go on"
grep -q "origin .*flush failed" "$WORK/a.log" ||
    fail "the log does not name the failed flush"
stop_server
c=$(exit_counters "$WORK/a.log")
case "$c" in
    "reallocated=0 events=0 pending=0 uncorrectable=0 "*" spare_bad=0 "*) ;;
    *) fail "a flush failure changed the table: $c" ;;
esac

start_server b origin="$ORIGIN" spare="$SPARE"
[ "$(flush_result)" = 0 ] || fail "FLUSH still fails after a restart"
qio "$URI" "write -f -P 0x84 $((6 * U)) $U" "read -P 0x84 $((6 * U)) $U" \
    "read -P 0x83 $((7 * U)) $U"
stop_server
ok "after a restart FLUSH and FUA succeed; no unit changed state"
E2E_RESULT=0
