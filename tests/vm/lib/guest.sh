# shellcheck shell=bash
# tests/vm/lib/guest.sh - the guest half of the VM tests (issue 11).
#
# Sourced by a tests/vm/test-vm-*.sh script when /init runs it in the guest
# as  bash SCRIPT --guest JOB .  The guest's / is an overlay of the host's
# (read-only 9p) with a tmpfs on top; /run is a tmpfs; JOB is the
# host's job directory (9p, read-write).  Origins and spares live in guest
# RAM ($G), so a kill -9 of nbdkit loses nothing but what the plugin never
# wrote.
#
# Every nbdkit runs remap.so under nbdkit's log filter, so that what the
# kernel sent (reads, writes, FUA, flushes, trims and their sizes) can be
# counted (g_counters).  Only processes started here, by PID, are killed.

set -u
LC_ALL=C
export LC_ALL
PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin
export PATH

JOB=$2
# shellcheck disable=SC1091
. "$JOB/env"
PLUGIN=$REMAP_BUILD_DIR/remap.so
RC=$REMAP_BUILD_DIR/remapctl
G=/run/vm
MNT=/mnt/vm
DEV=/dev/nbd0
mkdir -p "$G" "$MNT"
G_T0=$(date +%s%N)
G_PIDS=()
G_ATEXIT=()
G_PASSED=0
G_NAME=guest
SRV_PID=
SRV_NAME=
MODE=
NBD_OPTS=()

glog() {
    local ms=$((($(date +%s%N) - G_T0) / 1000000))
    printf '[%s %4d.%03ds] %s\n' "$G_NAME${MODE:+/$MODE}" $((ms / 1000)) $((ms % 1000)) "$*"
}
gok() { glog "ok: $*"; }
gfail() {
    glog "FAIL: $*"
    echo "VM-RESULT: FAIL ${MODE:+[$MODE] }$*" >"$JOB/result"
    exit 1
}

g_cleanup() {
    local pid f i
    set +e
    trap - EXIT INT TERM
    if [ "$G_PASSED" != 1 ]; then
        [ -s "$JOB/result" ] || echo "VM-RESULT: FAIL (the guest script stopped)" >"$JOB/result"
        echo "---- guest dmesg (nbd, ext4, dm, I/O errors; last 30)"
        dmesg | grep -iE 'nbd|ext4|device-mapper|dm-|I/O error|timed out|stuck' | tail -n 30
        for f in "$G"/*.log; do
            [ -s "$f" ] || continue
            echo "---- $f (last 30 lines)"
            grep -v 'debug: ' "$f" | tail -n 30
        done
    fi
    mountpoint -q "$MNT" && { umount "$MNT" || umount -l "$MNT"; }
    nbd-client -c "$DEV" >/dev/null 2>&1 && nbd-client -d "$DEV" >/dev/null 2>&1
    for pid in "${G_PIDS[@]}"; do
        kill "$pid" 2>/dev/null
    done
    for pid in "${G_PIDS[@]}"; do
        wait "$pid" 2>/dev/null
    done
    for ((i = ${#G_ATEXIT[@]} - 1; i >= 0; i--)); do
        eval "${G_ATEXIT[$i]}"
    done
}

# g_init NAME: traps, and the dmesg mark of the start.
g_init() {
    G_NAME=$1
    trap g_cleanup EXIT
    trap 'glog "interrupted"; exit 1' INT TERM
    : >"$JOB/result"
    ip link set lo up 2>/dev/null
    [ -e /sys/block/nbd0 ] || gfail "no /dev/nbd0 (nbd.ko not loaded)"
    glog "kernel $(uname -r), $(nproc) vCPU; $(nbd-client -V 2>&1 | head -n 1); $(nbdkit --version)"
}

g_pass() {
    G_PASSED=1
    MODE=
    echo "VM-RESULT: PASS $*" >"$JOB/result"
    glog "PASS: $*"
}

# g_mode MODE: the nbd-client options of "single" (-b 4096) or "multi"
# (-b 4096 -C 2).
g_mode() {
    MODE=$1
    case "$MODE" in
        single) NBD_OPTS=(-b 4096) ;;
        multi) NBD_OPTS=(-b 4096 -C 2) ;;
        *) gfail "unknown mode $MODE (single or multi)" ;;
    esac
    glog "---- mode $MODE: nbd-client ${NBD_OPTS[*]}"
}

# dmesg marks: g_mark NAME writes a line to the kernel log; g_dmesg_since
# NAME prints what came after it.
g_mark() { echo "vm-mark-$1" >/dev/kmsg; }
g_dmesg_since() { dmesg | sed -n "/vm-mark-$1\$/,\$p" | sed 1d; }

# g_dmesg_clean NAME: no I/O error on nbd0, no ext4 error, no timeout since
# the mark.
g_dmesg_clean() {
    local bad
    bad=$(g_dmesg_since "$1" | grep -iE 'nbd.*(error|timed out|stuck|dead)|I/O error.*nbd|EXT4-fs (error|warning)|Buffer I/O error|Aborting journal|remounting.*read-only')
    [ -z "$bad" ] || { printf '%s\n' "$bad"; gfail "the guest kernel logged errors ($2)"; }
}

# g_file PATH MIB [BYTE]: a file of MIB MiB in guest RAM, zero (sparse) or
# filled with BYTE (octal, e.g. 245 = 0xa5).
g_file() {
    rm -f "$1"
    if [ -n "${3:-}" ]; then
        # tr is slow under TCG: one MiB of it, then cat
        head -c 1048576 /dev/zero | tr '\0' "\\$3" >"$G/chunk" || gfail "create $G/chunk"
        for ((i = 0; i < $2; i++)); do cat "$G/chunk"; done >"$1" || gfail "create $1"
        rm -f "$G/chunk"
    else
        truncate -s $(($2 << 20)) "$1" || gfail "create $1"
    fi
}

# g_start NAME PARAMS...: nbdkit -f --filter=log remap.so PARAMS on
# $G/NAME.sock, control socket $G/NAME.ctl, requests logged in
# $G/NAME.req, stderr (-v) in $G/NAME.log.  Sets SRV_PID, SOCK, CTL.
g_start() {
    local name=$1
    shift
    SRV_NAME=$name
    SOCK=$G/$name.sock
    CTL=$G/$name.ctl
    rm -f "$SOCK" "$G/$name.pid" "$G/$name.req"
    nbdkit -f --exit-with-parent -v -D nbdkit.backend.datapath=0 \
        -P "$G/$name.pid" -U "$SOCK" --filter=log "$PLUGIN" "$@" \
        logfile="$G/$name.req" control="$CTL" >>"$G/$name.log" 2>&1 &
    SRV_PID=$!
    G_PIDS+=("$SRV_PID")
    for _ in $(seq 600); do
        [ -s "$G/$name.pid" ] && [ -S "$SOCK" ] && break
        kill -0 "$SRV_PID" 2>/dev/null ||
            gfail "nbdkit ($name) exited during start: $(grep -v 'debug: ' "$G/$name.log" | tail -n 3)"
        sleep 0.1
    done
    [ -S "$SOCK" ] || gfail "nbdkit ($name) did not create $SOCK"
}

# g_stop: SIGTERM the server (no client may be connected), exit status 0,
# print its request counters and its exit line.
g_stop() {
    local rc
    kill "$SRV_PID"
    wait "$SRV_PID"
    rc=$?
    [ "$rc" = 0 ] || [ "$rc" = 143 ] || gfail "nbdkit ($SRV_NAME) exited with status $rc"
    g_counters "$G/$SRV_NAME.req" "$SRV_NAME"
    grep -a 'remap: exit:' "$G/$SRV_NAME.log" | tail -n 1 | sed 's/^.*remap: /    /'
    SRV_PID=
}

# g_kill9: the crash.  Status must be 137.
g_kill9() {
    local rc
    kill -9 "$SRV_PID"
    { wait "$SRV_PID"; } 2>/dev/null    # without bash's "Killed" line
    rc=$?
    [ "$rc" = 137 ] || gfail "nbdkit ($SRV_NAME) was not killed by SIGKILL (status $rc)"
    SRV_PID=
}

g_wait_free() {
    for _ in $(seq 100); do
        nbd-client -c "$DEV" >/dev/null 2>&1 || return 0
        sleep 0.1
    done
    gfail "$DEV still connected 10 s after nbd-client -d"
}

# g_connect [EXTRA-NBD-CLIENT-OPTIONS...]
# shellcheck disable=SC2120  # scenario 5 passes -t 30
g_connect() {
    local size
    g_wait_free
    nbd-client -unix "$SOCK" "$DEV" "${NBD_OPTS[@]}" "$@" >>"$G/nbd-client.log" 2>&1 ||
        gfail "nbd-client ${NBD_OPTS[*]} $* failed: $(tail -n 2 "$G/nbd-client.log")"
    for _ in $(seq 50); do
        [ "$(cat /sys/block/nbd0/size 2>/dev/null || echo 0)" != 0 ] && break
        sleep 0.1
    done
    size=$(($(cat /sys/block/nbd0/size) * 512))
    [ "$size" -gt 0 ] || gfail "$DEV has size 0 after nbd-client"
    [ "$(cat /sys/block/nbd0/queue/logical_block_size)" = 4096 ] ||
        gfail "$DEV has logical block size $(cat /sys/block/nbd0/queue/logical_block_size), not 4096"
}

g_disconnect() {
    nbd-client -d "$DEV" >>"$G/nbd-client.log" 2>&1 || gfail "nbd-client -d failed"
    g_wait_free
}

g_drop_caches() { sync; echo 3 >/proc/sys/vm/drop_caches; }

# g_mkfs LABEL [OPTIONS...]: mkfs.ext4 -b 4096 on the device (plus
# VM_MKFS_OPTS from the host's environment).
g_mkfs() {
    local label=$1
    shift
    # shellcheck disable=SC2086
    mkfs.ext4 -F -q -b 4096 -L "$label" "$@" ${VM_MKFS_OPTS:-} "$DEV" >"$G/mkfs.log" 2>&1 ||
        gfail "mkfs.ext4: $(cat "$G/mkfs.log")"
}

# g_fsck WHAT: e2fsck -fn must be clean.
g_fsck() {
    e2fsck -fn "$DEV" >"$G/fsck.out" 2>&1 || { cat "$G/fsck.out"; gfail "e2fsck -fn ($1) found problems"; }
    gok "e2fsck -fn clean ($1): $(tail -n 1 "$G/fsck.out")"
}

# g_verify DIR SUMS WHAT: every checksum of SUMS matches under DIR.
g_verify() {
    (cd "$1" && sha256sum --quiet -c "$2") >"$G/verify.out" 2>&1 ||
        { head -n 20 "$G/verify.out"; gfail "checksums differ ($3)"; }
    gok "$(wc -l <"$2") checksums match ($3)"
}

# g_counters REQLOG LABEL: what the kernel sent, from nbdkit's log filter.
g_counters() {
    [ -f "$1" ] || { glog "counters ($2): no request log"; return 0; }
    awk -v label="$2" '
        function hex(s,   i, c, n) {
            n = 0; s = tolower(substr(s, 3))
            for (i = 1; i <= length(s); i++) {
                c = index("0123456789abcdef", substr(s, i, 1)) - 1
                n = n * 16 + c
            }
            return n
        }
        $3 ~ /^connection=/ && $4 == "Connect" { conns++ }
        $3 ~ /^connection=/ && $4 ~ /^(Read|Write|Trim|Zero|Flush|Cache|Extents)$/ {
            op = $4; n[op]++
            for (i = 5; i <= NF; i++) {
                if ($i ~ /^count=/) {
                    c = hex(substr($i, 7)); bytes[op] += c
                    if (c > max[op]) max[op] = c
                    if (!(op in min) || c < min[op]) min[op] = c
                }
                if ($i == "fua=1") fua[op]++
            }
        }
        function secs(t,   a) { split(t, a, ":"); return a[1] * 3600 + a[2] * 60 + a[3] }
        $3 ~ /^connection=/ && $5 ~ /^id=/ && $4 !~ /^\.\.\./ { start[$3 " " $5] = secs($2) }
        $4 ~ /^\.\.\./ && (($3 " " $5) in start) {
            d = secs($2) - start[$3 " " $5]
            if (d < 0) d += 86400
            if (d > slowest) { slowest = d; slowop = substr($4, 4) }
            delete start[$3 " " $5]
        }
        $4 ~ /^\.\.\./ && / return=-1/ { errs++ }
        END {
            printf "    requests (%s): %d connections", label, conns
            split("Read Write Trim Zero Flush Cache Extents", ops, " ")
            for (k = 1; k <= 7; k++) {
                op = ops[k]
                if (!(op in n)) continue
                printf "; %s %d", tolower(op), n[op]
                if (op in bytes)
                    printf " (%.1f MiB, %d-%d KiB%s)", bytes[op] / 1048576,
                        min[op] / 1024, max[op] / 1024,
                        (op in fua) ? sprintf(", FUA %d", fua[op]) : ""
            }
            printf "; errors returned %d; slowest %s %.3f s\n", errs, slowop, slowest
        }' "$1"
}

# g_count REQLOG OP: the number of requests of OP (Read, Write, Trim, Flush)
# and how many had FUA: "N FUA".
g_count() {
    awk -v op="$2" '$4 == op { n++; if (/ fua=1 /) f++ } END { print n + 0, f + 0 }' "$1"
}

# g_copy SRC DST: copy a data set onto the mounted filesystem.
g_copy() {
    mkdir -p "$2" && cp -r "$1/." "$2/" || gfail "copy $1 to $2"
}

# g_remap_list: "ORIGIN_UNIT SPARE_UNIT STATE" lines from the control socket.
g_remap_list() {
    "$RC" list --control "$CTL" --json >"$G/list.json" || gfail "remapctl list --control failed"
    jq -r '.entries[] | "\(.origin_unit) \(.spare_unit) \(.state)"' "$G/list.json"
}

# g_status_reallocated: the reallocated count of remapctl status.
g_status_reallocated() {
    "$RC" status --control "$CTL" >"$G/status.out" || gfail "remapctl status --control failed"
    awk '/reallocated units/ { print $3 }' "$G/status.out"
}

# g_failing_run START INJECT WHAT: the flow of scenarios 2 and 6, an origin
# that starts failing under a mounted ext4.  START NAME is a function that
# starts the server (g_start NAME ...) on the healthy origin; INJECT makes
# the origin fail (it runs while the data set b is being written).  Data
# sets a (before), b (during), c (after) come from the host with their
# checksums ($JOB/{a,b,c} and $JOB/{a,b,c}.sha256).  Then: syncfs succeeds,
# no I/O error in the guest's kernel log, every checksum, remapctl status
# shows the remaps; umount, e2fsck -fn clean with the failures still on;
# a new nbdkit, cold caches, a new connection: e2fsck -fn, every checksum.
g_failing_run() {
    local start=$1 inject=$2 what=$3 n writer s
    g_mark "$MODE-1"
    "$start" "$MODE-r1"
    g_connect
    g_mkfs vmfail
    mount -t ext4 "$DEV" "$MNT" || gfail "mount"
    g_copy "$JOB/a" "$MNT/a"
    sync -f "$MNT" || gfail "syncfs (healthy origin)"
    gok "data set a written and synced on the healthy origin"
    g_copy "$JOB/b" "$MNT/b" &
    writer=$!
    G_PIDS+=("$writer")
    sleep 0.3
    "$inject"
    wait "$writer" || gfail "writing data set b failed while the origin started failing"
    sleep 0.3
    g_copy "$JOB/c" "$MNT/c"
    sync -f "$MNT" || gfail "syncfs reported an error after the origin started failing ($what)"
    gok "data sets b and c written while the origin failed ($what); syncfs succeeded"
    g_dmesg_clean "$MODE-1" "while the origin failed"
    g_drop_caches    # the reads go to the server, where the read rules are
    for s in a b c; do g_verify "$MNT/$s" "$JOB/$s.sha256" "$s, failures active"; done
    n=$(g_status_reallocated)
    glog "remapctl status: $n units reallocated; $(awk '/write errors/ { print $3 }' "$G/status.out") write errors, $(awk '/read retries/ { print $3 }' "$G/status.out") read retries"
    [ "${n:-0}" -ge 100 ] || { cat "$G/status.out"; gfail "remapctl status shows only ${n:-0} remapped units"; }
    umount "$MNT" || gfail "umount"
    g_fsck "failures still active"
    g_disconnect
    g_stop
    n=$(sed -n 's/.*remap: exit: reallocated=\([0-9]*\).*/\1/p' "$G/$MODE-r1.log" | tail -n 1)

    g_mark "$MODE-2"
    "$start" "$MODE-r2"
    g_drop_caches
    g_connect
    g_fsck "new nbdkit, cold caches, failures still active"
    mount -t ext4 -o ro "$DEV" "$MNT" || gfail "mount ro (restart)"
    for s in a b c; do g_verify "$MNT/$s" "$JOB/$s.sha256" "$s, after the restart"; done
    umount "$MNT" || gfail "umount"
    [ "$(g_status_reallocated)" = "$n" ] || gfail "the restarted server has $(g_status_reallocated) remapped units, not $n"
    g_disconnect
    g_stop
    g_dmesg_clean "$MODE-2" "after the restart"
}
