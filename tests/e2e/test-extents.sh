#!/bin/bash
# test-extents.sh - block status (extents) through remap.so knows the remap.
#
# A 64 MiB half-sparse origin file (data islands, some unaligned, in holes)
# with remapped units, several of them inside the origin's holes, and the
# client's own data written to those: the origin keeps its hole there, and
# only the spare has the bytes.  Then:
#   - qemu-img map --output=json (qemu asks with REQ_ONE) and nbdinfo --map
#     (whole ranges) agree, 4 KiB by 4 KiB, with the truth: allocated where
#     the origin file has data (SEEK_DATA) or the unit is remapped; known
#     zero where the origin has a hole and the unit is not remapped (hole)
#     or remapped but never written (its spare copy is the hole's zeroes:
#     allocated zero), nowhere else;
#   - qemu-img convert and nbdcopy (both skip holes) give the bytes the
#     client sees, which a copy without extents (nbdcopy --no-extents) and
#     the origin patched with what was written agree on (cmp);
#   - the same through an NBD origin (the origin served by nbdkit's file
#     plugin, remap's origin= an NBD URI: base:allocation is passed on);
#   - an origin whose block status fails (rehearsal: fail=extents:...,
#     error=ENOTCONN): that range is all data, a warning says so, the
#     copies are still exact, and nothing is recorded against the medium
#     (remapctl status: no pending unit, no new remap, same generation).
# That the test can fail: the origin itself is checked to have holes where
# the written remapped units are (a plugin passing the origin's extents on
# would report them as holes and the copies would lose them).
#
# Needs: nbdkit, qemu-img, nbdcopy, nbdinfo, python3.  Exit 0/1/77.

. "$(dirname "$0")/lib/common.sh"
e2e_init test-extents
e2e_require qemu-img nbdcopy nbdinfo python3 cmp

U=4096
SIZE=$((64 << 20))
ORIGIN=$WORK/origin.img
SPARE=$WORK/spare.img
EXPECT=$WORK/expect.img
# Remapped units: inside data islands (10, 2000, 1000 in an unaligned one,
# 5000), inside holes (500, 3000-3003, 9000, 16383 = the last unit).
REMAPPED="10 500 1000 2000 3000 3001 3002 3003 5000 9000 16383"
WRITTEN="500 3001 3003 9000 16383"      # remapped units in holes, then written
LIST=$(echo "$REMAPPED" | tr ' ' ',')

make_file "$ORIGIN" $SIZE zero
make_file "$SPARE" $((8 << 20)) zero
# Data islands: offsets and lengths in bytes, not all aligned to a unit.
for isl in 0:200000 4095000:10000 8192000:4096 20000000:3000000 \
           40000000:1 60000000:1000000; do
    off=${isl%%:*} len=${isl##*:}
    head -c "$len" /dev/urandom |
        dd of="$ORIGIN" oflag=seek_bytes seek="$off" conv=notrunc \
           iflag=fullblock bs=64k status=none || fail "dd into origin"
done
[ "$(stat -c %s "$ORIGIN")" = $SIZE ] || fail "origin has the wrong size"

# check_map JSON KIND: the map agrees with the truth, unit by unit.
check_map() {
    python3 - "$1" "$2" "$ORIGIN" "$SIZE" "$U" "$REMAPPED" "$WRITTEN" <<'EOF' || fail "$2 disagrees with the truth"
import json, os, sys
path, kind, origin, size, u = sys.argv[1], sys.argv[2], sys.argv[3], int(sys.argv[4]), int(sys.argv[5])
remapped = {int(x) for x in sys.argv[6].split()}
written = {int(x) for x in sys.argv[7].split()}
# Truth, per 4 KiB block: allocated if the origin has data there or it is
# remapped; zero if the origin has a hole there, unless it was written.
truth = [False] * (size // u)
fd = os.open(origin, os.O_RDONLY)
pos = 0
while pos < size:
    try:
        d = os.lseek(fd, pos, os.SEEK_DATA)
    except OSError:
        break
    h = os.lseek(fd, d, os.SEEK_HOLE)
    for b in range(d // u, (h + u - 1) // u):
        truth[b] = True
    pos = h
tzero = [not t for t in truth]
for b in remapped:
    truth[b] = True
for b in written:
    tzero[b] = False
got = [None] * (size // u)
gzero = [None] * (size // u)
ents = json.load(open(path))
end = 0
for e in ents:
    if kind == "qemu-img":
        off, ln, data, zero = e["start"], e["length"], e["data"], e["zero"]
    else:
        off, ln = e["offset"], e["length"]
        data, zero = (e["type"] & 1) == 0, (e["type"] & 2) != 0
    if off != end:
        sys.exit(f"{kind}: extent at {off}, expected {end}: not contiguous")
    if not data and not zero:
        sys.exit(f"{kind}: hole without zero at {off}: the origin is a file")
    if kind == "nbdinfo" and e["type"] == 1:
        sys.exit(f"{kind}: hole without zero at {off}")
    if off % u or ln % u:
        sys.exit(f"{kind}: extent {off}+{ln} not on 4 KiB blocks (the file's holes are)")
    for b in range(off // u, (off + ln) // u):
        got[b] = data
        gzero[b] = zero
    end = off + ln
if end != size:
    sys.exit(f"{kind}: map ends at {end}, the disk at {size}")
bad = [b for b in range(size // u) if (got[b], gzero[b]) != (truth[b], tzero[b])]
if bad:
    sys.exit(f"{kind}: {len(bad)} blocks differ, first {bad[:8]}: (allocated, zero) "
             f"got {[(got[b], gzero[b]) for b in bad[:8]]}, "
             f"truth {[(truth[b], tzero[b]) for b in bad[:8]]}")
nd = sum(truth)
nz = sum(1 for b in range(size // u) if truth[b] and tzero[b])
print(f"{kind}: {len(ents)} extents, {nd} allocated blocks of {len(truth)} "
      f"({nz} of them remapped zeroes), all agree")
EOF
}

# The origin must have holes under the written units, or the test proves
# nothing.
python3 - "$ORIGIN" "$U" "$WRITTEN" <<'EOF' || skip "the origin file has no hole where the test needs one: the file system under $WORK does not report holes (SEEK_HOLE)"
import os, sys
fd = os.open(sys.argv[1], os.O_RDONLY)
u = int(sys.argv[2])
for x in sys.argv[3].split():
    off = int(x) * u
    try:
        d = os.lseek(fd, off, os.SEEK_DATA)
    except OSError:             # ENXIO: no data after off
        continue
    if d < off + u:
        sys.exit(f"unit {x} of the origin holds data")
EOF
ok "origin units $WRITTEN are holes in the origin file"

# Expected bytes: the origin, and what the client writes into those units.
cp --sparse=always "$ORIGIN" "$EXPECT"
for x in $WRITTEN; do
    pattern_file "$WORK/pat" $(( (x % 250) + 1 )) $U
    dd if="$WORK/pat" of="$EXPECT" bs=$U seek="$x" conv=notrunc status=none ||
        fail "dd into expect"
done

run_checks() {
    local tag=$1
    qemu-img map --output=json -f raw "$URI" >"$WORK/map-$tag.json" ||
        fail "qemu-img map ($tag)"
    check_map "$WORK/map-$tag.json" qemu-img
    nbdinfo --map --json "$URI" >"$WORK/nbdinfo-$tag.json" || fail "nbdinfo --map ($tag)"
    check_map "$WORK/nbdinfo-$tag.json" nbdinfo
    ok "$tag: qemu-img map and nbdinfo --map agree with the truth"

    rm -f "$WORK/conv.img" "$WORK/copy.img" "$WORK/full.img"
    qemu-img convert -f raw -O raw "$URI" "$WORK/conv.img" || fail "qemu-img convert ($tag)"
    cmp "$EXPECT" "$WORK/conv.img" || fail "$tag: qemu-img convert lost or changed bytes"
    nbdcopy "$URI" "$WORK/copy.img" || fail "nbdcopy ($tag)"
    cmp "$EXPECT" "$WORK/copy.img" || fail "$tag: nbdcopy lost or changed bytes"
    nbdcopy --no-extents "$URI" "$WORK/full.img" || fail "nbdcopy --no-extents ($tag)"
    cmp "$EXPECT" "$WORK/full.img" || fail "$tag: the export is not what was written"
    ok "$tag: qemu-img convert, nbdcopy and nbdcopy --no-extents equal the expected bytes"
}

log "remap.so over the origin file, remap=$LIST"
start_server f1 "$ORIGIN" spare="$SPARE" format=yes remap="$LIST"
for x in $WRITTEN; do
    qio "$URI" "write -P $(( (x % 250) + 1 )) $((x * U)) $U"
done
ok "client data written into remapped units $WRITTEN"
run_checks file
stop_server

log "the origin through an NBD server (nbdkit file plugin), remap's origin= its URI"
start_nbdkit o1 file "$ORIGIN"
OURI=$URI
OPID=$SERVER_PID
start_server f2 "$OURI" spare="$SPARE"
run_checks nbd
stop_server
stop_server "$OPID"

status_counters() {
    "$RC" status --json -s "$SPARE" -o "$ORIGIN" |
        python3 -c 'import json, sys; c = json.load(sys.stdin)["counters"]; print(c["pending_units"], c["reallocated_units"], c["generation"])' ||
        fail "remapctl status"
}
before=$(status_counters)
log "the origin's block status fails in [16 MiB, 32 MiB) (rehearsal); counters before: $before"
start_server f3 "$ORIGIN" spare="$SPARE" fail=extents:16m+16m,error=ENOTCONN
nbdinfo --map --json "$URI" >"$WORK/nbdinfo-fail.json" || fail "nbdinfo --map (failing extents)"
python3 - "$WORK/nbdinfo-fail.json" <<'EOF' || fail "the failing range is not reported as data"
import json, sys
M = 1 << 20
seen = 0
for e in json.load(open(sys.argv[1])):
    a, b = e["offset"], e["offset"] + e["length"]
    if a < 32 * M and b > 16 * M:
        if e["type"] != 0:
            sys.exit(f"extent {a}+{b - a} type {e['type']} inside the failing range")
        seen += min(b, 32 * M) - max(a, 16 * M)
if seen != 16 * M:
    sys.exit(f"only {seen} bytes of the failing range reported")
EOF
grep -q "cannot tell its allocation" "$WORK/f3.log" || fail "no warning in the server log"
nbdcopy "$URI" "$WORK/copy-fail.img" || fail "nbdcopy (failing extents)"
cmp "$EXPECT" "$WORK/copy-fail.img" || fail "nbdcopy with failing extents lost or changed bytes"
stop_server
after=$(status_counters)
[ "$before" = "$after" ] || fail "counters (pending, reallocated, generation) moved: $before -> $after"
ok "failing extents: data in that range, a warning, exact copies, nothing recorded ($after)"
E2E_RESULT=0
