#!/bin/bash
# test-vm-discard.sh - issue 11, scenario 3: discard (mount -o discard, and
# fstrim) never loses the data of remapped units.
#
#   guest: remap.so (remap=LIST) -> nbd-client -b 4096 [-C 2] -> /dev/nbd0 -> ext4 -o discard
#
# For each mode: the origin (96 MiB of 0xa5) with units 0-63 and every
# 256th unit remapped at start; mkfs.ext4 (one trim of the whole device),
# mount -o discard, data sets a and b, syncfs; rm -r b (online discard of
# its blocks), fstrim (every free block); data set c (reusing the freed
# blocks), syncfs.  The kernel must have sent trims over remapped units
# after mkfs; the table keeps every unit (trim is advisory); the device's
# data of every remapped unit is its spare unit's and the origin's bytes
# there are still 0xa5 (lib/units.py); a and c match their checksums; the
# same after umount, e2fsck -fn and a restart with cold caches.  Exit 0/1/77.

# trims_over_remapped REQLOG UNITS DEVSIZE: how many trims smaller than the
# whole device touched a remapped unit.
trims_over_remapped() {
    awk -v devsize="$3" '
        function hex(s,   i, n) {
            n = 0; s = tolower(substr(s, 3))
            for (i = 1; i <= length(s); i++)
                n = n * 16 + index("0123456789abcdef", substr(s, i, 1)) - 1
            return n
        }
        FNR == NR { mapped[$1] = 1; next }
        $4 == "Trim" {
            off = hex(substr($6, 8)); cnt = hex(substr($7, 7))
            if (cnt >= devsize) next
            for (u = int(off / 4096); u * 4096 < off + cnt; u++)
                if (u in mapped) { n++; break }
        }
        END { print n + 0 }' "$2" "$1"
}

check_units() {
    g_remap_list >"$G/units.now"
    [ "$(wc -l <"$G/units.now")" = "$1" ] ||
        gfail "the table has $(wc -l <"$G/units.now") units, not $1: a trim unmapped remapped units ($2)"
    g_drop_caches
    python3 "$REMAP_SOURCE_DIR/tests/vm/lib/units.py" "$G/list.json" "$G/$MODE.origin" "$G/$MODE.spare" "$DEV" 0xa5 8 \
        >"$G/units.out" 2>&1 || { cat "$G/units.out"; gfail "remapped units after discard ($2)"; }
    gok "$(tail -n 1 "$G/units.out") ($2)"
}

guest_mode() {
    local origin=$G/$MODE.origin spare=$G/$MODE.spare list u n0 n size t
    g_file "$origin" 96 245
    g_file "$spare" 16
    list=0-63
    for ((u = 300; u < 96 * 256; u += 256)); do list+=",$u"; done
    g_mark "$MODE-1"
    g_start "$MODE-r1" "$origin" spare="$spare" format=yes remap="$list"
    g_connect
    size=$(($(cat /sys/block/nbd0/size) * 512))
    g_mkfs vmdiscard
    mount -t ext4 -o discard "$DEV" "$MNT" || gfail "mount -o discard"
    g_copy "$JOB/a" "$MNT/a"
    g_copy "$JOB/b" "$MNT/b"
    sync -f "$MNT" || gfail "syncfs"
    g_remap_list >"$G/units"
    n0=$(wc -l <"$G/units")
    rm -r "$MNT/b" || gfail "rm -r b"
    sync -f "$MNT" || gfail "syncfs after rm"
    fstrim -v "$MNT" >"$G/fstrim.out" 2>&1 || gfail "fstrim: $(cat "$G/fstrim.out")"
    glog "$(cat "$G/fstrim.out")"
    g_copy "$JOB/c" "$MNT/c"
    sync -f "$MNT" || gfail "syncfs after fstrim"
    g_dmesg_clean "$MODE-1" "discard"
    t=$(trims_over_remapped "$G/$MODE-r1.req" "$G/units" "$size")
    glog "trims after mkfs that touched remapped units: $t"
    [ "$t" -ge 1 ] || gfail "no trim after mkfs touched a remapped unit: the test proved nothing"
    g_verify "$MNT/a" "$JOB/a.sha256" "a, after discard"
    g_verify "$MNT/c" "$JOB/c.sha256" "c, written over trimmed blocks"
    umount "$MNT" || gfail "umount"
    # after umount: while mounted, ext4's metadata lives dirty in the
    # device's page cache until the journal is checkpointed
    check_units "$n0" "online discard and fstrim, after umount"
    g_fsck "after discard"
    g_disconnect
    g_stop
    read -r n _ < <(g_count "$G/$MODE-r1.req" Trim)
    [ "$n" -ge 3 ] || gfail "only $n trims reached nbdkit"

    g_mark "$MODE-2"
    g_start "$MODE-r2" "$origin" spare="$spare"
    g_drop_caches
    g_connect
    g_fsck "new nbdkit, cold caches"
    mount -t ext4 -o ro "$DEV" "$MNT" || gfail "mount ro"
    g_verify "$MNT/a" "$JOB/a.sha256" "a, after the restart"
    g_verify "$MNT/c" "$JOB/c.sha256" "c, after the restart"
    umount "$MNT" || gfail "umount"
    check_units "$n0" "after the restart"
    g_disconnect
    g_stop
    g_dmesg_clean "$MODE-2" "after the restart"
    rm -f "$origin" "$spare"
}

guest_main() {
    g_init test-vm-discard
    for m in $VM_MODES; do
        g_mode "$m"
        guest_mode
        MODE=
    done
    g_pass "scenario 3 (discard and fstrim over remapped units) in modes: $VM_MODES"
}

if [ "${1:-}" = --guest ]; then
    # shellcheck source=tests/vm/lib/guest.sh
    . "$(dirname "$0")/lib/guest.sh"
    guest_main
    exit 0
fi

# shellcheck source=tests/vm/lib/host.sh
. "$(dirname "$0")/lib/host.sh"
vm_init test-vm-discard python3 jq fstrim
for s in a b c; do vm_data "$JOB/$s" 2; done
vm_run
