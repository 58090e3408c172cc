#!/bin/bash
# demo.sh - show remap at work, from a fresh checkout, in about ten seconds.
#
#   scripts/demo.sh            (as root on Debian, missing packages are
#                               installed with apt-get; otherwise they are
#                               listed and the demo stops)
#
# What it does:
#   1. builds build/remap.so if it is missing or older than the sources;
#   2. makes a 64 MiB origin full of random data and an empty 8 MiB spare in
#      a temporary directory;
#   3. starts nbdkit with remap=100,2000-2003,16383 ("these units are bad")
#      and, through qemu-io, writes patterns over bad and good units, one
#      write straddling a good and a bad unit, and reads them back;
#   4. opens the two files directly and shows that the bad units' new data
#      is on the spare, at the spare units the plugin allocated, while the
#      origin still holds the old bytes there (it was never written), and
#      that good units were written to the origin;
#   5. restarts nbdkit (the table is read back from the spare) and reads
#      everything back;
#   6. prints a summary, removes the temporary directory, and exits 0 only
#      if every check passed.
#
# Environment: DEMO_KEEP=1 keeps the temporary directory.

set -u
LC_ALL=C
export LC_ALL

PACKAGES="build-essential cmake pkg-config nbdkit nbdkit-plugin-dev libnbd-dev
libnbd-bin liburing-dev libjson-c-dev check libsubunit-dev qemu-utils"
ROOT=$(cd "$(dirname "$0")/.." && pwd)
U=4096
BAD_LIST=100,2000-2003,16383
PASSED=0
FAILED=0
W=

say() { printf '\n== %s\n' "$*"; }
check() {   # DESCRIPTION COMMAND...
    local desc=$1
    shift
    if "$@"; then
        printf '  [ ok ] %s\n' "$desc"
        PASSED=$((PASSED + 1))
    else
        printf '  [FAIL] %s\n' "$desc"
        FAILED=$((FAILED + 1))
    fi
}
die() { printf 'demo: %s\n' "$*" >&2; exit 1; }

cleanup() {
    if [ -n "$W" ]; then
        if [ "${DEMO_KEEP:-0}" = 1 ]; then echo "(kept $W)"; else rm -rf "$W"; fi
    fi
}
trap cleanup EXIT

# ---- 1. packages and build --------------------------------------------------------
install_packages() {
    local missing=() p
    for p in $PACKAGES; do
        dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" ||
            missing+=("$p")
    done
    [ ${#missing[@]} -eq 0 ] && return 0
    if [ "$(id -u)" != 0 ] || ! command -v apt-get >/dev/null 2>&1; then
        die "missing packages: ${missing[*]}
install them with: sudo apt-get install -y ${missing[*]}"
    fi
    say "installing: ${missing[*]}"
    apt-get update -q >/dev/null || die "apt-get update failed"
    DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends \
        "${missing[@]}" >/dev/null || die "apt-get install failed"
}

build() {
    cd "$ROOT" || die "cannot cd to $ROOT"
    if [ -f build/remap.so ] &&
       [ -z "$(find core plugin include CMakeLists.txt -newer build/remap.so -print -quit 2>/dev/null)" ]; then
        return 0
    fi
    say "building (cmake -S . -B build && cmake --build build -j2)"
    { cmake -S . -B build && cmake --build build -j2; } >"${TMPDIR:-/tmp}/remap-demo-build.log" 2>&1 ||
        die "build failed: see ${TMPDIR:-/tmp}/remap-demo-build.log"
    [ -f build/remap.so ] || die "the build did not produce build/remap.so"
}

if command -v dpkg-query >/dev/null 2>&1; then install_packages; fi
for c in nbdkit qemu-io cmake cc; do
    command -v "$c" >/dev/null 2>&1 || die "command not found: $c (install: $PACKAGES)"
done
build
PLUGIN=$ROOT/build/remap.so

# ---- 2. files -------------------------------------------------------------------------
W=$(mktemp -d /tmp/remap-demo.XXXXXX) || die "mktemp failed"
ORIGIN=$W/origin.img
SPARE=$W/spare.img
say "origin: 64 MiB of random data ($ORIGIN); spare: 8 MiB, empty ($SPARE)"
head -c $((64 << 20)) /dev/urandom >"$ORIGIN" || die "cannot write $ORIGIN"
cp "$ORIGIN" "$W/origin.before" || die "cp"
truncate -s $((8 << 20)) "$SPARE" || die "truncate"

# The client side, run by nbdkit --run with the export's URI.  The writes:
#   unit 100 (bad)           0xb1, whole unit
#   units 2000-2003 (bad)    0xb2, one 16 KiB request over four bad units
#   unit 101 (good)          0xc1, whole unit
#   units 16382|16383        0xb3, 3000 bytes: the last 1000 bytes of a good
#                            unit and the first 2000 of the (bad) last unit
cat >"$W/client.sh" <<EOF
#!/bin/sh
mode=\$1 uri=\$2
op=read
[ "\$mode" = write ] && op=write
out=\$(qemu-io -f raw \\
  -c "\$op -P 0xb1 $((100 * U)) $U" \\
  -c "\$op -P 0xb2 $((2000 * U)) $((4 * U))" \\
  -c "\$op -P 0xc1 $((101 * U)) $U" \\
  -c "\$op -P 0xb3 $((16383 * U - 1000)) 3000" \\
  -c "flush" "\$uri" 2>&1) || { echo "\$out"; exit 1; }
echo "\$out" | grep -E '^(wrote|read) '
if echo "\$out" | grep -qi 'verification failed\|error'; then echo "\$out"; exit 1; fi
exit 0
EOF

run_nbdkit() {   # LOG MODE PARAMS...
    local logf=$1 mode=$2
    shift 2
    nbdkit -U - -v -D nbdkit.backend.datapath=0 "$PLUGIN" "$@" \
        --run "sh '$W/client.sh' $mode \"\$uri\"" 2>"$logf"
}

# ---- 3. first run ------------------------------------------------------------------------
say "nbdkit $PLUGIN origin=... spare=... format=yes remap=$BAD_LIST  (qemu-io writes, then reads back)"
run_nbdkit "$W/run1.log" write origin="$ORIGIN" spare="$SPARE" format=yes remap=$BAD_LIST
check "qemu-io wrote the patterns through nbdkit" test $? = 0
grep -E 'error' "$W/run1.log" | grep -v debug: | sed 's/^/    /'
run_nbdkit "$W/run1b.log" verify origin="$ORIGIN" spare="$SPARE"
check "qemu-io read every pattern back (read -P) on a second connection" test $? = 0

spare_unit() {
    sed -n "s/.*remap: unit $1 -> spare unit \([0-9][0-9]*\).*/\1/p" "$W/run1.log" | tail -n 1
}

# ---- 4. the files themselves ----------------------------------------------------------
say "where the data is (read directly from the files)"
printf '  %-13s %-11s %s\n' "origin unit" "spare unit" "byte offset on the spare"
declare -A SU
for u in 100 2000 2001 2002 2003 16383; do
    SU[$u]=$(spare_unit $u)
    printf '  %-13s %-11s %s\n' "$u" "${SU[$u]:-?}" "$(( ${SU[$u]:-0} * U ))"
done
pat() { head -c "$2" /dev/zero | tr '\0' "$(printf '\\%03o' "$1")"; }
on_spare() {   # SPARE_UNIT SKIP LEN BYTE: spare bytes equal the pattern?
    [ -n "$1" ] || return 1
    cmp -s <(dd if="$SPARE" iflag=skip_bytes,count_bytes skip=$(($1 * U + $2)) count="$3" status=none) \
           <(pat "$4" "$3")
}
same_as_before() {   # OFFSET LEN: origin unchanged there?
    cmp -s -n "$2" -i "$1:$1" "$ORIGIN" "$W/origin.before"
}
on_origin() {   # OFFSET LEN BYTE
    cmp -s <(dd if="$ORIGIN" iflag=skip_bytes,count_bytes skip="$1" count="$2" status=none) <(pat "$3" "$2")
}

check "spare unit ${SU[100]:-?} holds 0xb1, the data written to bad unit 100" on_spare "${SU[100]}" 0 $U 0xb1
for u in 2000 2001 2002 2003; do
    check "spare unit ${SU[$u]:-?} holds 0xb2, the data written to bad unit $u" on_spare "${SU[$u]}" 0 $U 0xb2
done
check "spare unit ${SU[16383]:-?} holds 0xb3 in its first 2000 bytes (bad unit 16383)" on_spare "${SU[16383]}" 0 2000 0xb3
check "...and the rest of that unit is the origin's old data, copied when it was remapped" \
    cmp -s -n $((U - 2000)) -i $((${SU[16383]:-0} * U + 2000)):$((16383 * U + 2000)) "$SPARE" "$W/origin.before"
for range in 100 2000-2003 16383; do
    first=${range%-*} last=${range#*-}
    check "origin bytes of bad unit(s) $range unchanged (never written)" \
        same_as_before $((first * U)) $(((last - first + 1) * U))
done
check "good unit 101 was written to the origin (0xc1)" on_origin $((101 * U)) $U 0xc1
check "good unit 16382 got the first 1000 bytes of the straddling write" on_origin $((16383 * U - 1000)) 1000 0xb3

# ---- 5. restart ---------------------------------------------------------------------------
say "restart nbdkit (no remap= this time; format=yes is harmless on a formatted spare)"
run_nbdkit "$W/run2.log" verify origin="$ORIGIN" spare="$SPARE" format=yes
check "a new nbdkit process read every pattern back" test $? = 0
counters=$(sed -n 's/.*remap: start: //p' "$W/run2.log" | tail -n 1)
echo "  counters at start: $counters"
check "the table read back from the spare has 6 reallocated units" \
    grep -q "reallocated=6 " <<<"$counters"

# ---- 6. the disk fails while in use (rehearsal) ------------------------------------------
say "the origin starts failing: fail=write at unit 3000, fail=read at unit 4000 (rehearsal)"
nbdkit -U - -v -D nbdkit.backend.datapath=0 "$PLUGIN" origin="$ORIGIN" spare="$SPARE" \
    fail=write:$((3000 * U))+$U fail=read:$((4000 * U))+512 read-retries=1 read-retry-delay=1 \
    --run "qemu-io -f raw -c 'write -P 0xd1 $((3000 * U)) $U' -c 'read -P 0xd1 $((3000 * U)) $U' \
           -c 'read $((4000 * U)) $U' \"\$uri\"" >"$W/run3.out" 2>"$W/run3.log"
sed 's/^/    qemu-io: /' "$W/run3.out"
check "the write to failing unit 3000 succeeded for the client and read back" \
    grep -q "^read $U/$U bytes at offset $((3000 * U))" "$W/run3.out"
check "the read of failing unit 4000 returned EIO to the client (nothing invented)" \
    grep -q "Input/output error" "$W/run3.out"
check "the origin's unit 3000 was not changed: its new data is on the spare" \
    same_as_before $((3000 * U)) $U
counters=$(sed -n 's/.*remap: exit: //p' "$W/run3.log" | tail -n 1)
echo "  counters at exit: $counters"
check "unit 3000 was remapped automatically (7 reallocated, 1 write error)" \
    grep -q "reallocated=7 .*write_errors=1 " <<<"$counters"
check "unit 4000 is pending until it is rewritten" grep -q "pending=1 " <<<"$counters"
if [ -x "$ROOT/build/remapctl" ]; then
    say "remapctl list (offline, on the files)"
    "$ROOT/build/remapctl" list -s "$SPARE" -o "$ORIGIN" | sed 's/^/  /'
fi

# ---- 7. summary ----------------------------------------------------------------------------
say "summary"
echo "  bad units $BAD_LIST of the origin are served from the spare;"
echo "  their data is on the spare at the units shown above, the origin was never"
echo "  written there, and the mapping survived a restart.  When the origin began"
echo "  failing under the client, the failed write was remapped invisibly and the"
echo "  failed read was reported, never invented."
echo "  checks passed: $PASSED, failed: $FAILED"
if [ "$FAILED" -ne 0 ]; then
    echo "  logs: $W/run*.log (kept)"
    DEMO_KEEP=1
    exit 1
fi
exit 0
