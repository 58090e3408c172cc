#!/bin/bash
# test-vm-crash.sh - issue 11, scenario 4: kill -9 nbdkit while the guest
# writes and fsyncs files through the kernel's nbd client.
#
#   guest: remap.so -> nbd-client -b 4096 [-C 2] -> /dev/nbd0 -> ext4
#
# For each mode, VM_CRASH_ROUNDS (default 3) rounds: a writer copies files
# onto the filesystem, fsyncs each one and its directory, and only then
# records its checksum (in guest RAM, not on the device).  After a random
# 1.5-5 s nbdkit is killed with SIGKILL.  From round 2 on, every write to
# the first 40 MiB of the origin fails (fail-file), so remaps are being
# committed when the kill lands.  Then: the writer stops on its I/O error,
# umount, nbd-client -d, a new nbdkit on the same origin and spare, a new
# connection, mount (journal replay), every fsynced file intact, umount,
# e2fsck -fn clean.  Exit 0/1/77.

ROUNDS=${VM_CRASH_ROUNDS:-3}

declare -A SUM

writer() {   # writer DIR: copy pool files until an error
    local i=0 f
    mkdir -p "$MNT/$1" && sync "$MNT" || exit 0
    while :; do
        for f in "${POOL[@]}"; do
            i=$((i + 1))
            cp "$G/pool/$f" "$MNT/$1/$i.$f" || exit 0
            sync "$MNT/$1/$i.$f" || exit 0
            sync "$MNT/$1" || exit 0
            echo "${SUM[$f]}  $1/$i.$f" >>"$G/$MODE.fsynced"
        done
    done
}

start_r() {
    g_start "$MODE-$1" "$G/$MODE.origin" spare="$G/$MODE.spare" format=yes \
        fail-file="$G/$MODE.faults" read-retries=1 read-retry-delay=1
}

guest_mode() {
    local r w ms n before after killed_at
    g_file "$G/$MODE.origin" 64
    g_file "$G/$MODE.spare" 32
    rm -f "$G/$MODE.faults" "$G/$MODE.fsynced"
    touch "$G/$MODE.fsynced"
    start_r r0
    g_connect
    g_mkfs vmcrash
    for ((r = 1; r <= ROUNDS; r++)); do
        if [ "$r" -ge 2 ]; then
            echo 'write:0+40m' >"$G/$MODE.faults"
            sleep 0.3    # the rule file is polled every 100 ms
        fi
        mount -t ext4 "$DEV" "$MNT" || gfail "mount (round $r)"
        before=$(g_status_reallocated)
        writer "r$r" &
        w=$!
        G_PIDS+=("$w")
        ms=$((1500 + RANDOM % 3500))
        sleep "$((ms / 1000)).$(printf '%03d' $((ms % 1000)))"
        after=$(g_status_reallocated)
        n=$(wc -l <"$G/$MODE.fsynced")
        g_kill9
        killed_at=$ms
        for _ in $(seq 300); do kill -0 "$w" 2>/dev/null || break; sleep 0.1; done
        if kill -0 "$w" 2>/dev/null; then
            kill "$w"
            glog "the writer did not stop on its own 30 s after the kill; killed it"
        fi
        wait "$w"
        umount "$MNT" 2>/dev/null || umount -l "$MNT" || gfail "umount after the crash"
        nbd-client -d "$DEV" >>"$G/nbd-client.log" 2>&1
        g_wait_free
        g_counters "$G/$SRV_NAME.req" "$SRV_NAME (killed)"
        glog "round $r: nbdkit killed after $killed_at ms, $n files fsynced by then (total $(wc -l <"$G/$MODE.fsynced")), remaps ${before:-?} -> ${after:-?} just before the kill"
        [ "$r" -lt 2 ] || [ "${after:-0}" -gt "${before:-0}" ] ||
            gfail "round $r: no remap was committed during the round (the rule file did nothing)"

        g_mark "$MODE-restart-$r"
        start_r "r$r"
        g_drop_caches
        g_connect
        mount -t ext4 "$DEV" "$MNT" || gfail "mount after the crash (round $r)"
        g_verify "$MNT" "$G/$MODE.fsynced" "round $r: every fsynced file after the crash and journal replay"
        umount "$MNT" || gfail "umount"
        g_fsck "round $r, after journal replay"
        g_dmesg_since "$MODE-restart-$r" | grep -iE 'EXT4-fs (error|warning)|I/O error|nbd.*(error|timed out)' &&
            gfail "round $r: kernel errors after the restart"
    done
    g_disconnect
    g_stop
    [ "$(wc -l <"$G/$MODE.fsynced")" -ge 10 ] || gfail "only $(wc -l <"$G/$MODE.fsynced") files were fsynced in $ROUNDS rounds: the test proved little"
    rm -f "$G/$MODE.origin" "$G/$MODE.spare"
}

guest_main() {
    local f s
    g_init test-vm-crash
    mkdir -p "$G/pool" && cp "$JOB/pool/"* "$G/pool/" || gfail "copy the pool"
    POOL=()
    while read -r s f; do
        f=${f#./}
        SUM[$f]=$s
        POOL+=("$f")
    done <"$JOB/pool.sha256"
    for m in $VM_MODES; do
        g_mode "$m"
        guest_mode
        MODE=
    done
    g_pass "scenario 4 (kill -9 nbdkit during fsyncs, $ROUNDS rounds) in modes: $VM_MODES"
}

if [ "${1:-}" = --guest ]; then
    # shellcheck source=tests/vm/lib/guest.sh
    . "$(dirname "$0")/lib/guest.sh"
    guest_main
    exit 0
fi

# shellcheck source=tests/vm/lib/host.sh
. "$(dirname "$0")/lib/host.sh"
vm_init test-vm-crash
mkdir -p "$JOB/pool" || fail "mkdir pool"
for i in $(seq 30); do
    head -c $((i * 9000 + 4096 * (i % 7) + 17)) /dev/urandom >"$JOB/pool/p$i" || fail "generate"
done
(cd "$JOB/pool" && sha256sum -- *) >"$JOB/pool.sha256" || fail "sha256sum"
vm_run
