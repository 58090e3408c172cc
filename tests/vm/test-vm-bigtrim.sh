#!/bin/bash
# test-vm-bigtrim.sh - issue 11, scenario 5: a large discard within the
# kernel's request timeout.
#
#   guest: nbdkit memory 64G <- remap.so (origin=nbd+unix://...) -> nbd-client -t 30 -> /dev/nbd0
#
# For each mode: remap serves a 64 GiB sparse origin (nbdkit's memory
# plugin in the guest, reached by an NBD URI: no host space needed) with a
# 16 MiB spare and three units remapped at start.  nbd-client sets the
# kernel's request timeout to 30 s explicitly.  mkfs.ext4 discards the
# whole device first (trims of up to about 4 GiB each), then writes the
# filesystem; it must complete without any request timing out (the guest's
# kernel log must show no timeout), e2fsck -fn must be clean, a file must
# round-trip, and the remapped units must still be remapped.  The time mkfs
# took and the trims the kernel sent are printed.  Exit 0/1/77.

guest_mode() {
    local t0 ms n rc
    g_file "$G/$MODE.spare" 16
    rm -f "$G/mem.sock"
    nbdkit -f --exit-with-parent -U "$G/mem.sock" memory 64G >"$G/memory.log" 2>&1 &
    MEM_PID=$!
    G_PIDS+=("$MEM_PID")
    for _ in $(seq 100); do [ -S "$G/mem.sock" ] && break; sleep 0.1; done
    [ -S "$G/mem.sock" ] || gfail "nbdkit memory 64G did not start: $(cat "$G/memory.log")"
    g_mark "$MODE-1"
    g_start "$MODE-r1" "nbd+unix:///?socket=$G/mem.sock" spare="$G/$MODE.spare" format=yes \
        remap=0,1000,16000000
    g_connect -t 30
    [ "$(($(cat /sys/block/nbd0/size) * 512))" = $((64 << 30)) ] || gfail "/dev/nbd0 is not 64 GiB"
    glog "mkfs.ext4 of 64 GiB (discard of the whole device first; kernel timeout 30 s)"
    t0=$(date +%s%N)
    timeout 600 mkfs.ext4 -F -q -b 4096 -J size=64 -E lazy_itable_init=1,lazy_journal_init=1 \
        -L vmbig "$DEV" >"$G/mkfs.log" 2>&1
    rc=$?
    ms=$((($(date +%s%N) - t0) / 1000000))
    if [ "$rc" != 0 ]; then
        g_counters "$G/$MODE-r1.req" "$MODE-r1, when mkfs failed"
        g_dmesg_since "$MODE-1" | grep -E 'timed out|stuck|Dead connection' | head -n 5
        if g_dmesg_since "$MODE-1" | grep -q 'timed out'; then
            gfail "mkfs.ext4 of 64 GiB failed after $((ms / 1000)) s: the kernel timed out a request (30 s) and dropped the connection"
        fi
        gfail "mkfs.ext4 of 64 GiB failed (status $rc) after $((ms / 1000)) s: $(head -n 3 "$G/mkfs.log")"
    fi
    read -r n _ < <(g_count "$G/$MODE-r1.req" Trim)
    glog "mkfs.ext4 of 64 GiB took $((ms / 1000)).$(printf '%03d' $((ms % 1000))) s; $n trims reached nbdkit"
    g_dmesg_clean "$MODE-1" "mkfs of 64 GiB"
    mount -t ext4 "$DEV" "$MNT" || gfail "mount"
    cp "$JOB/file" "$MNT/file" || gfail "write a file"
    sync -f "$MNT" || gfail "syncfs"
    umount "$MNT" || gfail "umount"
    g_fsck "64 GiB"
    g_drop_caches
    mount -t ext4 -o ro "$DEV" "$MNT" || gfail "mount ro"
    cmp "$JOB/file" "$MNT/file" || gfail "the file differs"
    umount "$MNT" || gfail "umount"
    [ "$(g_remap_list | wc -l)" = 3 ] || gfail "the 3 units remapped at start are not all remapped after the discard"
    g_dmesg_clean "$MODE-1" "64 GiB"
    g_disconnect
    g_stop
    kill "$MEM_PID"
    wait "$MEM_PID"
    rm -f "$G/$MODE.spare"
}

guest_main() {
    g_init test-vm-bigtrim
    for m in $VM_MODES; do
        g_mode "$m"
        guest_mode
        MODE=
    done
    g_pass "scenario 5 (mkfs of 64 GiB within the kernel timeout) in modes: $VM_MODES"
}

if [ "${1:-}" = --guest ]; then
    # shellcheck source=tests/vm/lib/guest.sh
    . "$(dirname "$0")/lib/guest.sh"
    guest_main
    exit 0
fi

# shellcheck source=tests/vm/lib/host.sh
. "$(dirname "$0")/lib/host.sh"
vm_init test-vm-bigtrim jq
command -v nbdkit >/dev/null && nbdkit memory --dump-plugin >/dev/null 2>&1 ||
    skip "nbdkit's memory plugin is missing"
nbdkit "$REMAP_BUILD_DIR/remap.so" --dump-plugin 2>/dev/null | grep -q '^remap_nbd_backend=yes' ||
    skip "remap.so was built without libnbd: NBD origins are not available (apt-get install libnbd-dev, rebuild)"
head -c 1000000 /dev/urandom >"$JOB/file" || fail "generate"
vm_run
