#!/bin/bash
# test-vm-dm.sh - issue 11, scenario 6: a real failing block device as the
# origin.  Inside the guest, device-mapper over a loop device:
#
#   tmpfs file -> loop -> dm (linear, then flakey error_writes + error) ->
#   remap.so (direct=yes, O_DIRECT) -> nbd-client -b 4096 [-C 2] -> /dev/nbd0 -> ext4
#
# The errors come from the block layer, unit by unit.  For each mode: the
# device starts as one linear target (healthy); mkfs.ext4, data set a,
# syncfs; while data set b is being written the table is replaced
# (dmsetup load + resume): 0-40 MiB become dm-flakey with error_writes
# (every write fails, reads work: superblock, descriptors, bitmaps, inode
# table, files), 96-104 MiB the error target (free space: everything
# fails), the rest stays linear.  The loop device runs write-through, so
# that flushes never reach flakey (which would fail them: a flush failure
# is reported, not remapped, and that is another test).  Then as scenario
# 2 (lib/guest.sh g_failing_run): syncfs succeeds, no I/O error on nbd0 in
# the guest's kernel log, remapctl status shows the remaps, e2fsck -fn
# clean, every checksum, also after a restart with cold caches.
# Reads that fail once are scenario 2's (fail-file) alone.  Exit 0/1/77.

# direct=auto (the default) opens a block device with O_DIRECT and the
# spare, a tmpfs file, without; fdinfo shows it.
start_r() {
    local fd flags n=0
    g_start "$1" "$ORIGIN" spare="$G/$MODE.spare" format=yes \
        read-retries=2 read-retry-delay=1
    for fd in /proc/"$SRV_PID"/fd/*; do
        case "$(readlink "$fd")" in
            /dev/dm-*|/dev/mapper/*)
                flags=$(awk '/^flags:/ { print $2 }' "/proc/$SRV_PID/fdinfo/${fd##*/}")
                [ $((8#$flags & 8#40000)) != 0 ] || gfail "nbdkit opened $(readlink "$fd") without O_DIRECT (flags $flags)"
                n=$((n + 1)) ;;
        esac
    done
    [ "$n" -ge 1 ] || gfail "nbdkit has no descriptor open on the device-mapper device"
    glog "nbdkit holds $n descriptor(s) of $ORIGIN, all O_DIRECT"
}

inject() {
    local mib=2048    # sectors per MiB
    dmsetup load "$DMNAME" --table "0 $((40 * mib)) flakey $LOOP 0 0 3600 1 error_writes
$((40 * mib)) $((56 * mib)) linear $LOOP $((40 * mib))
$((96 * mib)) $((8 * mib)) error
$((104 * mib)) $((24 * mib)) linear $LOOP $((104 * mib))" || gfail "dmsetup load"
    dmsetup resume "$DMNAME" || gfail "dmsetup resume"
    glog "dm table replaced: 0-40 MiB flakey error_writes, 96-104 MiB error"
    dmsetup table "$DMNAME" | sed 's/^/    /'
}

guest_main() {
    g_init test-vm-dm
    for m in $VM_MODES; do
        g_mode "$m"
        g_file "$G/$MODE.disk" 128
        g_file "$G/$MODE.spare" 64
        LOOP=$(losetup -f --show "$G/$MODE.disk") || gfail "losetup"
        G_ATEXIT+=("losetup -d $LOOP")
        echo "write through" >"/sys/block/${LOOP#/dev/}/queue/write_cache" ||
            gfail "cannot make $LOOP write-through"
        DMNAME=vmorigin-$MODE
        dmsetup create "$DMNAME" --table "0 $((128 * 2048)) linear $LOOP 0" ||
            gfail "dmsetup create (dm_mod, udev-less: see dmesg)"
        G_ATEXIT+=("dmsetup remove $DMNAME")
        dmsetup mknodes "$DMNAME" >/dev/null 2>&1
        ORIGIN=/dev/mapper/$DMNAME
        [ -b "$ORIGIN" ] || gfail "$ORIGIN did not appear"
        g_failing_run start_r inject "device-mapper errors"
        grep -a 'remap: exit:' "$G/$MODE-r1.log" | tail -n 1 | grep -qE ' write_errors=[1-9]' ||
            gfail "no write error came from the device"
        g_dmesg_since "$MODE-1" | grep -c 'I/O error' | sed 's/^/    kernel I\/O error lines below nbd0 (dm, loop): /'
        MODE=
    done
    g_pass "scenario 6 (device-mapper errors under O_DIRECT) in modes: $VM_MODES"
}

if [ "${1:-}" = --guest ]; then
    # shellcheck source=tests/vm/lib/guest.sh
    . "$(dirname "$0")/lib/guest.sh"
    guest_main
    exit 0
fi

# shellcheck source=tests/vm/lib/host.sh
. "$(dirname "$0")/lib/host.sh"
vm_init test-vm-dm jq dmsetup losetup
for s in a b c; do vm_data "$JOB/$s" 2; done
vm_run
