#!/bin/bash
# test-vm-healthy.sh - issue 11, scenario 1: the kernel's nbd client on a
# healthy origin with units remapped at start, inside the filesystem's
# metadata and its data.
#
#   guest: remap.so (remap=LIST) -> nbd-client -b 4096 [-C 2] -> /dev/nbd0 -> ext4
#
# For each mode (-b 4096, then -b 4096 -C 2): the origin (96 MiB, every byte
# 0xa5) gets units 0-63 (superblock, descriptors, bitmaps, the start of the
# inode table) and every 256th unit remapped at start.  mkfs.ext4, the data
# set, syncfs, umount, e2fsck -fn; then a new nbdkit (the table read back from
# the spare), cold caches, a new connection: e2fsck -fn, every checksum, and
# for every remapped unit: the device's bytes are the spare unit's, the
# origin's are still 0xa5 (tests/vm/lib/units.py).  debugfs icheck must
# place remapped units in file data, and dumpe2fs the inode table on them.
#
# Host: root, qemu-system-x86_64, a Debian kernel with its modules, static
# busybox (lib/host.sh).  Exit 0/1/77.

guest_mode() {
    local origin=$G/$MODE.origin spare=$G/$MODE.spare list u units blocks infile it
    g_file "$origin" 96 245
    g_file "$spare" 16
    list=0-63
    for ((u = 300; u < 96 * 256; u += 256)); do list+=",$u"; done
    g_mark "$MODE-1"
    g_start "$MODE-r1" "$origin" spare="$spare" format=yes remap="$list"
    g_connect
    g_mkfs vmtest
    mount -t ext4 "$DEV" "$MNT" || gfail "mount"
    g_copy "$JOB/data" "$MNT"
    sync -f "$MNT" || gfail "syncfs reported an error"
    umount "$MNT" || gfail "umount"
    g_fsck "after writing"

    # Where the remapped units are in the filesystem.
    g_remap_list >"$G/units"
    units=$(awk '{ printf "%s ", $1 }' "$G/units")
    # shellcheck disable=SC2086
    infile=$(debugfs -R "icheck $units" "$DEV" 2>/dev/null | awk 'NR > 1 && $2 ~ /^[0-9]+$/ { n++ } END { print n + 0 }')
    it=$(dumpe2fs "$DEV" 2>/dev/null | sed -n 's/.*Inode table at \([0-9]*\)-.*/\1/p' | head -n 1)
    blocks=$(wc -l <"$G/units")
    glog "$blocks units remapped; $infile of them hold file or directory data; inode table starts at block ${it:-?}"
    [ "$infile" -ge 3 ] || gfail "only $infile remapped units hold file data (need 3: the test would prove nothing)"
    grep -q "^${it:-x} " "$G/units" || gfail "the inode table's first block ${it:-?} is not remapped"
    grep -q '^0 ' "$G/units" || gfail "unit 0 (the superblock) is not remapped"
    g_disconnect
    g_stop
    g_dmesg_clean "$MODE-1" "first connection"

    g_mark "$MODE-2"
    g_start "$MODE-r2" "$origin" spare="$spare"
    g_drop_caches
    g_connect
    g_fsck "new nbdkit, new connection, cold caches"
    mount -t ext4 -o ro "$DEV" "$MNT" || gfail "mount ro"
    g_verify "$MNT" "$JOB/data.sha256" "new nbdkit, cold caches"
    umount "$MNT" || gfail "umount"
    g_remap_list >"$G/units2"
    [ "$(wc -l <"$G/units2")" = "$blocks" ] || gfail "the table has $(wc -l <"$G/units2") units after the restart, not $blocks"
    g_drop_caches
    python3 "$REMAP_SOURCE_DIR/tests/vm/lib/units.py" "$G/list.json" "$origin" "$spare" "$DEV" 0xa5 8 \
        >"$G/units.out" 2>&1 || { cat "$G/units.out"; gfail "remapped units: data not on the spare, or origin changed"; }
    gok "$(tail -n 1 "$G/units.out")"
    g_disconnect
    g_stop
    g_dmesg_clean "$MODE-2" "second connection"
    rm -f "$origin" "$spare"
}

guest_main() {
    g_init test-vm-healthy
    for m in $VM_MODES; do
        g_mode "$m"
        guest_mode
        MODE=
    done
    g_pass "scenario 1 (healthy, remapped at start) in modes: $VM_MODES"
}

if [ "${1:-}" = --guest ]; then
    # shellcheck source=tests/vm/lib/guest.sh
    . "$(dirname "$0")/lib/guest.sh"
    guest_main
    exit 0
fi

# shellcheck source=tests/vm/lib/host.sh
. "$(dirname "$0")/lib/host.sh"
vm_init test-vm-healthy python3 jq dumpe2fs
vm_data "$JOB/data" 6
vm_run
