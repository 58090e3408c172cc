# tests/e2e/lib/common.sh - helpers shared by the end-to-end tests.
#
# Sourced, never run (it lives outside the tests/e2e/*.sh glob, so ctest does
# not register it).  A test does:
#
#   . "$(dirname "$0")/lib/common.sh"
#   e2e_init test-name            # work dir, traps, plugin path
#   e2e_require qemu-io nbdinfo   # exit 77 (skip) if a tool is missing
#
# Conventions: every step prints what it checks; fail() stops the test with
# exit 1 and shows the tail of the server logs; only processes started here
# (recorded by PID) are ever killed; the work directory is removed at exit
# unless E2E_KEEP=1.  Exit codes: 0 pass, 1 fail, 77 skip.

set -u
LC_ALL=C
export LC_ALL

E2E_NAME=e2e
E2E_T0=$(date +%s%N)
WORK=
PLUGIN=
E2E_PIDS=()
E2E_CLEANUP_FNS=()
E2E_RESULT=1

log() {
    local ms=$((($(date +%s%N) - E2E_T0) / 1000000))
    printf '[%s %3d.%03ds] %s\n' "$E2E_NAME" $((ms / 1000)) $((ms % 1000)) "$*"
}
skip() { log "SKIP: $*"; E2E_RESULT=77; exit 77; }
fail() { log "FAIL: $*"; E2E_RESULT=1; exit 1; }
ok()   { log "ok: $*"; }

# Register a command to run at exit (last registered runs first).
on_exit() { E2E_CLEANUP_FNS+=("$*"); }

e2e_cleanup() {
    local rc=$E2E_RESULT i pid
    set +e
    trap - EXIT INT TERM
    for ((i = ${#E2E_CLEANUP_FNS[@]} - 1; i >= 0; i--)); do
        eval "${E2E_CLEANUP_FNS[$i]}"
    done
    for pid in "${E2E_PIDS[@]}"; do
        if kill -0 "$pid" 2>/dev/null; then
            kill "$pid" 2>/dev/null
            for _ in $(seq 40); do kill -0 "$pid" 2>/dev/null || break; sleep 0.25; done
            kill -9 "$pid" 2>/dev/null
        fi
        wait "$pid" 2>/dev/null
    done
    if [ "$rc" = 1 ] && [ -n "$WORK" ]; then
        for f in "$WORK"/*.log; do
            [ -s "$f" ] || continue
            echo "---- $f (last 25 lines)"
            tail -n 25 "$f"
        done
    fi
    if [ -n "$WORK" ]; then
        if [ "${E2E_KEEP:-0}" = 1 ]; then log "work directory kept: $WORK"
        else rm -rf "$WORK"; fi
    fi
    case "$rc" in
        0) log PASS ;;
        77) ;;
        *) log FAIL ;;
    esac
    exit "$rc"
}

e2e_init() {
    E2E_NAME=$1
    local here src
    here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
    src=${REMAP_SOURCE_DIR:-$(cd "$here/../../.." && pwd)}
    REMAP_SOURCE_DIR=$src
    REMAP_BUILD_DIR=${REMAP_BUILD_DIR:-$src/build}
    PLUGIN=$REMAP_BUILD_DIR/remap.so
    RC=$REMAP_BUILD_DIR/remapctl
    command -v nbdkit >/dev/null 2>&1 || skip "nbdkit not installed"
    [ -f "$PLUGIN" ] || { log "FAIL: $PLUGIN not found: build first (cmake -S . -B build && cmake --build build)"; exit 1; }
    WORK=$(mktemp -d "/tmp/remap-$E2E_NAME.XXXXXX") || { echo "mktemp failed" >&2; exit 1; }
    trap e2e_cleanup EXIT
    trap 'log "interrupted"; exit 1' INT TERM
}

e2e_require() {
    local c
    for c in "$@"; do
        command -v "$c" >/dev/null 2>&1 || skip "command not found: $c"
    done
}

# make_file PATH SIZE_BYTES zero|random
make_file() {
    case "$3" in
        zero) rm -f "$1"; truncate -s "$2" "$1" ;;
        random) head -c "$2" /dev/urandom >"$1" ;;
        *) fail "make_file: unknown kind $3" ;;
    esac || fail "cannot create $1"
}

# pattern_file PATH BYTE LEN: LEN bytes of value BYTE (0..255).
pattern_file() {
    head -c "$3" /dev/zero | tr '\0' "$(printf '\\%03o' "$2")" >"$1"
}

# extract SRC OFFSET LEN DST: copy bytes out of a file.
extract() {
    dd if="$1" of="$4" iflag=skip_bytes,count_bytes skip="$2" count="$3" status=none ||
        fail "dd from $1 failed"
}

# same_bytes A OFFA B OFFB LEN: are the ranges equal?
same_bytes() {
    cmp -s -n "$5" -i "$2:$4" "$1" "$3"
}

sha() { sha256sum "$1" | cut -d' ' -f1; }

# ---- servers ---------------------------------------------------------------

# start_nbdkit NAME ARGS...: any nbdkit (plugin and parameters in ARGS) in
# the background on $WORK/NAME.sock, -v, stderr in $WORK/NAME.log (per-request
# lines only with E2E_DATAPATH=1); sets URI and SERVER_PID.  Fails the test if
# nbdkit does not come up.
start_nbdkit() {
    local name=$1
    shift
    local sock=$WORK/$name.sock pidf=$WORK/$name.pid
    rm -f "$sock" "$pidf"
    nbdkit -f --exit-with-parent -v -D nbdkit.backend.datapath="${E2E_DATAPATH:-0}" \
        -P "$pidf" -U "$sock" "$@" >>"$WORK/$name.log" 2>&1 &
    SERVER_PID=$!
    E2E_PIDS+=("$SERVER_PID")
    for _ in $(seq 300); do
        [ -s "$pidf" ] && [ -S "$sock" ] && break
        kill -0 "$SERVER_PID" 2>/dev/null || {
            wait "$SERVER_PID"
            fail "nbdkit ($name) exited during start: $(grep -v 'debug:' "$WORK/$name.log" | tail -n 3)"
        }
        sleep 0.1
    done
    [ -S "$sock" ] || fail "nbdkit ($name) did not create $sock"
    URI="nbd+unix:///?socket=$sock"
}

# start_server NAME [NBDKIT-OPTIONS... --] PARAMS...: remap.so with PARAMS,
# through start_nbdkit.
start_server() {
    local name=$1 opts=() a
    shift
    for a in "$@"; do
        [ "$a" = -- ] || continue
        while [ "$1" != -- ]; do opts+=("$1"); shift; done
        shift
        break
    done
    start_nbdkit "$name" "${opts[@]}" "$PLUGIN" "$@"
}

# stop_server [PID]: SIGTERM a server (default: the one started last); its
# exit status must be 0.
stop_server() {
    local pid=${1:-$SERVER_PID} rc
    kill "$pid" 2>/dev/null
    for _ in $(seq 120); do kill -0 "$pid" 2>/dev/null || break; sleep 0.25; done
    kill -0 "$pid" 2>/dev/null && { kill -9 "$pid"; fail "nbdkit $pid did not exit within 30 s of SIGTERM"; }
    wait "$pid"
    rc=$?
    [ "$rc" = 0 ] || fail "nbdkit $pid exited with status $rc"
}

# spare_unit_of LOG UNIT: the spare unit the plugin logged for an origin unit
# ("remap: unit U -> spare unit S" or "unit U already on spare unit S").
spare_unit_of() {
    sed -n -e "s/.*remap: unit $2 -> spare unit \([0-9][0-9]*\).*/\1/p" \
           -e "s/.*remap: unit $2 already on spare unit \([0-9][0-9]*\).*/\1/p" "$1" | tail -n 1
}

# qio URI CMD...: run qemu-io commands against the export, fail on error.
# qemu-io exits 0 even when a pattern check fails, so its output is scanned.
qio() {
    local uri=$1 out
    shift
    local args=()
    for c in "$@"; do args+=(-c "$c"); done
    out=$(qemu-io -f raw "${args[@]}" "$uri" 2>&1)
    local rc=$?
    if [ "$rc" != 0 ] || printf '%s\n' "$out" | grep -Eqi 'pattern verification failed|error|failed|mismatch'; then
        printf '%s\n' "$out" | tail -n 20
        fail "qemu-io: $*"
    fi
}

# ---- a kernel block device through nbdfuse + loop ---------------------------
#
# blockdev_init: check the prerequisites (skip otherwise) and set FUSEDIR,
# DISK (a unique FUSE file name, recognisable even after FUSE is gone) and
# MNT; registers the teardown.  blockdev_attach LABEL: nbdfuse on $URI,
# then a direct-I/O loop device on it, in $LOOP.  blockdev_detach: the
# reverse, checking nbdfuse's exit status.

blockdev_init() {
    [ "$(id -u)" = 0 ] || skip "needs root (loop devices, mount)"
    [ -c /dev/fuse ] || skip "/dev/fuse missing"
    [ -e /dev/loop-control ] || skip "no loop devices (/dev/loop-control missing)"
    e2e_require nbdfuse losetup mkfs.ext4 e2fsck mount umount mountpoint sha256sum
    FUSEDIR=$WORK/fuse
    DISK=$FUSEDIR/${WORK##*/}.img
    MNT=$WORK/mnt
    mkdir -p "$FUSEDIR" "$MNT"
    FUSE_PID= LOOP=
    on_exit blockdev_teardown
}

blockdev_teardown() {
    if mountpoint -q "$MNT"; then umount "$MNT" || umount -l "$MNT"; fi
    if [ -n "$LOOP" ]; then
        local bf
        bf=$(cat "/sys/block/${LOOP#/dev/}/loop/backing_file" 2>/dev/null)
        if [ "$bf" = "$DISK" ] || [ "$bf" = "/${DISK##*/}" ]; then losetup -d "$LOOP"; fi
        LOOP=
    fi
    if mountpoint -q "$FUSEDIR"; then
        umount "$FUSEDIR" 2>/dev/null || { sleep 1; umount "$FUSEDIR"; } || umount -l "$FUSEDIR"
    fi
    if [ -n "$FUSE_PID" ]; then
        for _ in $(seq 20); do kill -0 "$FUSE_PID" 2>/dev/null || break; sleep 0.25; done
        kill "$FUSE_PID" 2>/dev/null
        wait "$FUSE_PID" 2>/dev/null
        FUSE_PID=
    fi
}

blockdev_attach() {
    rm -f "$WORK/fuse.pid"
    nbdfuse -P "$WORK/fuse.pid" "$DISK" "$URI" >>"$WORK/nbdfuse.log" 2>&1 &
    FUSE_PID=$!
    for _ in $(seq 300); do
        [ -s "$WORK/fuse.pid" ] && break
        kill -0 "$FUSE_PID" 2>/dev/null || fail "nbdfuse exited early ($1)"
        sleep 0.1
    done
    [ -f "$DISK" ] || fail "nbdfuse did not create $DISK ($1)"
    LOOP=$(losetup -f --show --direct-io=on "$DISK") || fail "losetup ($1)"
    log "$1: $LOOP -> $DISK"
}

blockdev_detach() {
    local rc
    losetup -d "$LOOP" || fail "losetup -d $LOOP"
    LOOP=
    umount "$FUSEDIR" || fail "umount $FUSEDIR"
    wait "$FUSE_PID"
    rc=$?
    FUSE_PID=
    [ "$rc" = 0 ] || fail "nbdfuse exited with status $rc"
}

# qio_fails URI TEXT CMD...: the qemu-io commands must fail with TEXT (the
# strerror of the errno the client received).
qio_fails() {
    local uri=$1 want=$2 out c
    shift 2
    local args=()
    for c in "$@"; do args+=(-c "$c"); done
    out=$(qemu-io -f raw "${args[@]}" "$uri" 2>&1)
    printf '%s\n' "$out" | grep -q "$want" || {
        printf '%s\n' "$out"
        fail "expected '$want' from: $*"
    }
}

# set_fail_rules NAME FILE TEXT: replace the rehearsal rule file FILE
# (fail-file=FILE) of server NAME with TEXT, atomically (a rename: the
# server never reads half a file), and wait until the server has loaded it
# (its log counts one more "rehearsal: N rule(s) active").
set_fail_rules() {
    local log=$WORK/$1.log n
    n=$(grep -c 'rehearsal: .* rule(s) active' "$log")
    printf '%s\n' "$3" >"$2.new" && mv -f "$2.new" "$2" ||
        fail "cannot write $2"
    for _ in $(seq 50); do
        [ "$(grep -c 'rehearsal: .* rule(s) active' "$log")" -gt "$n" ] && return
        sleep 0.1
    done
    fail "server $1 did not load the rules: $3"
}

# ---- remapctl ------------------------------------------------------------
# RC (set by e2e_init) is build/remapctl.  rc CMD...: run it, stdout in
# $OUT, stderr in $ERR, status in $RCODE.  expect STATUS CMD...: it must
# exit with STATUS.
rc() {
    "$RC" "$@" >"$WORK/out" 2>"$WORK/err"
    RCODE=$?
    OUT=$(cat "$WORK/out")
    ERR=$(cat "$WORK/err")
}
expect() {
    local want=$1
    shift
    rc "$@"
    [ "$RCODE" = "$want" ] ||
        fail "remapctl $* exited $RCODE, want $want; stdout: $OUT; stderr: $ERR"
}
