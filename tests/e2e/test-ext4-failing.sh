#!/bin/bash
# test-ext4-failing.sh - ext4 on an origin that starts failing while files
# are being written (SPEC 3.2-3.5, issue 4):
#
#   remap.so (fail-file= rehearsal) -> nbdfuse -> loop (direct I/O) -> ext4
#
# Files are written in three batches.  After the first, the rule file is
# created: writes to the first 101 MiB of the disk (the superblock,
# descriptors, bitmaps, inode tables, journal and most data) fail for good,
# and reads fail once at a few points (transient:
# the engine's retries absorb them).  The second batch is being written
# when the rules appear, the third after.  Every write and sync must
# succeed; then, with the failures still active: umount, e2fsck -fn clean,
# every file's sha256; then a new nbdkit process (the table read back from
# the spare) and cold caches: e2fsck -fn and every sha256 again.  The exit
# counters must show thousands of remaps and the retries.
#
# Needs root, /dev/fuse, loop devices, nbdfuse, e2fsprogs.  Exit 0/1/77.

. "$(dirname "$0")/lib/common.sh"
e2e_init test-ext4-failing
blockdev_init

U=4096
ORIGIN=$WORK/origin.img
SPARE=$WORK/spare.img
FF=$WORK/faults
SUMS=$WORK/sha256sums
make_file "$ORIGIN" $((128 << 20)) zero
make_file "$SPARE" $((64 << 20)) zero

write_batch() {   # write_batch NAME COUNT
    mkdir -p "$MNT/$1" || fail "mkdir $1"
    head -c $((3 << 20 | 4321)) /dev/urandom >"$MNT/$1/big" || fail "write $1/big"
    for i in $(seq "$2"); do
        head -c $((i * 523 + 11)) /dev/urandom >"$MNT/$1/f$i" || fail "write $1/f$i"
    done
}

start_server r1 "$ORIGIN" spare="$SPARE" format=yes fail-file="$FF" \
    read-retries=2 read-retry-delay=1
blockdev_attach round1
mkfs.ext4 -F -q -b 4096 "$LOOP" >"$WORK/mkfs.log" 2>&1 || fail "mkfs.ext4"
mount -t ext4 "$LOOP" "$MNT" || fail "mount"
write_batch a 60
sync -f "$MNT" || fail "syncfs (batch a)"
ok "batch a written and synced on a healthy origin"

cat >"$FF.new" <<RULES
# every write to the first 101 MiB fails for good
write:0+101m
# reads fail once here and there: the retries must hide it
read:0+128m,after=50,times=1
read:0+128m,after=200,times=1
read:0+128m,after=400,times=1
RULES
write_batch b 80 &
writer=$!
sleep 0.2
mv "$FF.new" "$FF"
wait "$writer" || fail "batch b failed while the origin started failing"
sleep 0.3                       # the watcher polls every 100 ms
write_batch c 80
dd if=/dev/urandom of="$MNT/c/in-region" bs=1M count=8 status=none || fail "dd"
sync -f "$MNT" || fail "syncfs reported an error after the origin started failing"
(cd "$MNT" && find . -type f ! -path './lost+found/*' -print0 | sort -z |
     xargs -0 sha256sum) >"$SUMS" || fail "sha256sum"
NFILES=$(wc -l <"$SUMS")
umount "$MNT" || fail "umount"
e2fsck -fn "$LOOP" >"$WORK/fsck1.log" 2>&1 || { cat "$WORK/fsck1.log"; fail "e2fsck -fn (failures active)"; }
mount -t ext4 -o ro "$LOOP" "$MNT" || fail "mount ro"
(cd "$MNT" && sha256sum --quiet -c "$SUMS") >"$WORK/verify1.log" 2>&1 ||
    { cat "$WORK/verify1.log"; fail "checksum mismatch (failures active)"; }
umount "$MNT" || fail "umount"
ok "$NFILES files written while the origin failed; e2fsck -fn clean; all checksums match"
blockdev_detach
stop_server
grep -E "remap: exit:" "$WORK/r1.log" | tail -n 1 | sed 's/^.*remap: /    /'
n=$(sed -n 's/.*remap: exit: reallocated=\([0-9]*\).*/\1/p' "$WORK/r1.log" | tail -n 1)
[ "${n:-0}" -ge 1000 ] || fail "only ${n:-0} units were remapped"
grep -qE "remap: exit: .* write_errors=[1-9]" "$WORK/r1.log" || fail "no origin write error was seen"
grep -qE "remap: exit: .* retries=[1-9]" "$WORK/r1.log" || fail "no read was retried"

sync
echo 3 >/proc/sys/vm/drop_caches
start_server r2 "$ORIGIN" spare="$SPARE" fail-file="$FF"
blockdev_attach round2
e2fsck -fn "$LOOP" >"$WORK/fsck2.log" 2>&1 || { cat "$WORK/fsck2.log"; fail "e2fsck -fn after restart"; }
mount -t ext4 -o ro "$LOOP" "$MNT" || fail "mount (round 2)"
(cd "$MNT" && sha256sum --quiet -c "$SUMS") >"$WORK/verify2.log" 2>&1 ||
    { cat "$WORK/verify2.log"; fail "checksum mismatch after restart"; }
umount "$MNT" || fail "umount (round 2)"
blockdev_detach
stop_server
ok "after a restart with cold caches: e2fsck -fn clean, $NFILES checksums match"

E2E_RESULT=0
