#!/bin/bash
# test-error-classes.sh - only a media error is a verdict, end to end
# (SPEC 3.10, docs/ERRORS.md).
#
# A rehearsal origin (fail-file=) fails unit 10 for writes and unit 11 for
# reads with one errno after another, one of each error class.  For every
# non-media errno the client (qemu-io) must get the errno of its class,
# ENOSPC, EPERM or EIO, never EINVAL; the origin's bytes stay as they were;
# once the rule is gone the same request succeeds on the origin itself; and
# at exit nothing is reallocated, pending or bad.  enospc=eio turns the
# space errors into EIO.  Then the positive control: a media error (EIO,
# ENODATA) on the same units remaps the write and makes the read pending.
#
# Exit 0 pass, 1 fail, 77 skip.

. "$(dirname "$0")/lib/common.sh"
e2e_init test-error-classes
e2e_require qemu-io cmp
nbdkit "$PLUGIN" --dump-plugin | grep -q '^remap_rehearsal=yes' ||
    fail "the plugin does not offer rehearsal"

U=4096
ORIGIN=$WORK/origin.img
SPARE=$WORK/spare.img
FF=$WORK/faults
make_file "$ORIGIN" $((4 << 20)) random
make_file "$SPARE" $((1 << 20)) zero
cp "$ORIGIN" "$WORK/original.img"

# client_text ERRNO: what qemu-io prints for the client errno of its class.
client_text() {
    case "$1" in
        ENOSPC|EDQUOT|EFBIG) echo "No space left on device" ;;
        EPERM|EACCES|EROFS) echo "Operation not permitted" ;;
        *) echo "Input/output error" ;;
    esac
}

# exit_counters LOG: the counters the server logged when it stopped.
exit_counters() { sed -n 's/.*remap: exit: //p' "$1" | tail -n 1; }

start_server a origin="$ORIGIN" spare="$SPARE" format=yes fail-file="$FF" \
    read-retries=1 read-retry-delay=1
for e in ENOSPC EDQUOT EFBIG ENOTCONN ECONNRESET ETIMEDOUT EAGAIN ENOMEM \
         EROFS EACCES EINVAL; do
    want=$(client_text "$e")
    set_fail_rules a "$FF" "write:$((10 * U))+$U,error=$e
read:$((11 * U))+$U,error=$e"
    qio_fails "$URI" "$want" "write -P 0x61 $((10 * U)) $U"
    qio_fails "$URI" "$want" "write -P 0x62 $((10 * U + 100)) 200"
    qio_fails "$URI" "$want" "read $((11 * U)) $U"
    same_bytes "$ORIGIN" $((10 * U)) "$WORK/original.img" $((10 * U)) $U ||
        fail "$e: the origin's unit 10 was changed by a failed write"
    ok "$e: writes and reads fail with '$want'; the origin is unchanged"
done
set_fail_rules a "$FF" "# healed"
qio "$URI" "write -P 0x63 $((10 * U)) $U" "read -P 0x63 $((10 * U)) $U" \
    "read $((11 * U)) $U"
pattern_file "$WORK/p63" $((0x63)) $U
same_bytes "$ORIGIN" $((10 * U)) "$WORK/p63" 0 $U ||
    fail "after healing, the write did not reach the origin's unit 10"
ok "healed: the same write goes to the origin, the read succeeds"
stop_server
c=$(exit_counters "$WORK/a.log")
case "$c" in
    "reallocated=0 events=0 pending=0 uncorrectable=0 "*" spare_bad=0 "*) ;;
    *) fail "non-media errors changed the table: $c" ;;
esac
ok "no unit changed state: $(printf '%s' "$c" | cut -c1-80)"

# enospc=eio: every lack of space becomes EIO.
start_server b origin="$ORIGIN" spare="$SPARE" fail-file="$FF" enospc=eio
set_fail_rules b "$FF" "write:$((10 * U))+$U,error=EDQUOT"
qio_fails "$URI" "Input/output error" "write -P 0x64 $((10 * U)) $U"
ok "enospc=eio: EDQUOT on the origin reaches the client as EIO"
stop_server

# The positive control: media errors are verdicts.
start_server c origin="$ORIGIN" spare="$SPARE" fail-file="$FF" \
    read-retries=1 read-retry-delay=1
set_fail_rules c "$FF" "write:$((10 * U))+$U,error=EIO
read:$((11 * U))+$U,error=ENODATA"
qio "$URI" "write -P 0x65 $((10 * U)) $U" "read -P 0x65 $((10 * U)) $U"
qio_fails "$URI" "Input/output error" "read $((11 * U)) $U"
same_bytes "$ORIGIN" $((10 * U)) "$WORK/p63" 0 $U ||
    fail "control: the failing unit 10 of the origin was written"
stop_server
c=$(exit_counters "$WORK/c.log")
case "$c" in
    "reallocated=1 events=1 pending=1 "*) ;;
    *) fail "control: a media error did not remap / mark pending: $c" ;;
esac
ok "control: EIO on write remaps unit 10, ENODATA on read makes unit 11 pending"
E2E_RESULT=0
