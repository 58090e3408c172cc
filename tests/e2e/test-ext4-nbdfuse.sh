#!/bin/bash
# test-ext4-nbdfuse.sh - a real ext4 filesystem on remap.so, through a real
# kernel block device:
#
#   remap.so (nbdkit, unix socket) -> nbdfuse (FUSE file, 4 connections)
#     -> loop device (direct I/O) -> ext4
#
# Remapped units lie inside the filesystem: unit 0 (boot block + primary
# superblock), units 1-4 (group descriptors), runs in the inode tables and
# in the data area.  Round 1: mkfs, files of known sha256, syncfs, umount,
# e2fsck -fn.  Round 2, with a new nbdkit process and cold caches: e2fsck
# -fn, mount read-only, sha256sum -c, file count.  Finally the origin must
# still be all zeroes at every remapped unit (ext4's superblock lives only
# on the spare).
#
# Needs root, /dev/fuse, loop devices, nbdfuse, mkfs.ext4, e2fsck, losetup.
# Exit 0 pass, 1 fail, 77 skip.

. "$(dirname "$0")/lib/common.sh"
e2e_init test-ext4-nbdfuse
blockdev_init

U=4096
ORIGIN=$WORK/origin.img
SPARE=$WORK/spare.img
SUMS=$WORK/sha256sums
REMAP_LIST=0-4,33,1000-1007,4097,9000-9015,20000-20031
make_file "$ORIGIN" $((128 << 20)) zero
make_file "$SPARE" $((16 << 20)) zero

# ---- round 1 --------------------------------------------------------------------
log "round 1: 128 MiB origin, 16 MiB spare, remap=$REMAP_LIST"
start_server r1 "$ORIGIN" spare="$SPARE" format=yes remap=$REMAP_LIST
blockdev_attach round1
mkfs.ext4 -F -q -b 4096 -L remaptest "$LOOP" >"$WORK/mkfs.log" 2>&1 || fail "mkfs.ext4"
mount -t ext4 "$LOOP" "$MNT" || fail "mount"
mkdir -p "$MNT/a/b" || fail "mkdir"
head -c $((12 << 20)) /dev/urandom >"$MNT/big1" || fail "write big1"
head -c $((9 << 20 | 12345)) /dev/urandom >"$MNT/a/big2" || fail "write big2"
for i in $(seq 150); do
    head -c $((i * 211 + 7)) /dev/urandom >"$MNT/a/b/small$i" || fail "write small$i"
done
printf 'remapped units: %s\n' "$REMAP_LIST" >"$MNT/readme.txt"
(cd "$MNT" && find . -type f ! -path './lost+found/*' -print0 | sort -z | xargs -0 sha256sum) >"$SUMS" ||
    fail "sha256sum"
NFILES=$(wc -l <"$SUMS")
sync -f "$MNT/readme.txt" || fail "syncfs reported an error"
umount "$MNT" || fail "umount (round 1)"
e2fsck -fn "$LOOP" >"$WORK/fsck1.log" 2>&1 || fail "e2fsck -fn after writing"
ok "round 1: mkfs, $NFILES files (~22 MiB), syncfs, e2fsck -fn clean"
blockdev_detach
stop_server

# ---- round 2: new nbdkit process, cold caches -----------------------------------
sync
echo 3 >/proc/sys/vm/drop_caches
log "round 2: new nbdkit (table read back from the spare), cold caches"
start_server r2 "$ORIGIN" spare="$SPARE"
blockdev_attach round2
e2fsck -fn "$LOOP" >"$WORK/fsck2.log" 2>&1 || fail "e2fsck -fn on the new connection"
mount -t ext4 -o ro "$LOOP" "$MNT" || fail "mount (round 2)"
(cd "$MNT" && sha256sum --quiet -c "$SUMS") >"$WORK/verify.log" 2>&1 || fail "checksum mismatch"
n=$(cd "$MNT" && find . -type f ! -path './lost+found/*' | wc -l)
[ "$n" = "$NFILES" ] || fail "file count $n != $NFILES"
umount "$MNT" || fail "umount (round 2)"
ok "round 2: e2fsck -fn clean, $NFILES files match their sha256"
blockdev_detach
stop_server

# ---- the origin never saw the remapped units -------------------------------------
for range in ${REMAP_LIST//,/ }; do
    first=${range%-*} last=${range#*-}
    cmp -s -n $(((last - first + 1) * U)) -i $((first * U)):0 "$ORIGIN" /dev/zero ||
        fail "origin units $range were written although remapped"
done
ok "origin all zeroes at every remapped unit ($REMAP_LIST)"
# ext4's magic 0xEF53 sits at byte 1080 of the disk, inside unit 0.
s0=$(spare_unit_of "$WORK/r1.log" 0)
[ -n "$s0" ] || fail "spare unit of unit 0 not logged"
magic=$(od -An -tx1 -j $((s0 * U + 1080)) -N2 "$SPARE" | tr -d ' ')
[ "$magic" = 53ef ] || fail "spare unit $s0 lacks the ext4 magic (got '$magic')"
used=0
for range in ${REMAP_LIST//,/ }; do
    for ((u = ${range%-*}; u <= ${range#*-}; u++)); do
        s=$(spare_unit_of "$WORK/r1.log" $u)
        [ -n "$s" ] || fail "spare unit of unit $u not logged"
        cmp -s -n $U -i $((s * U)):0 "$SPARE" /dev/zero || used=$((used + 1))
    done
done
[ "$used" -ge 3 ] || fail "only $used remapped units hold filesystem data"
ok "$used remapped units hold filesystem data on the spare"
ok "ext4's primary superblock is on spare unit $s0 (magic 53ef at byte $((s0 * U + 1080))), not on the origin"
E2E_RESULT=0
