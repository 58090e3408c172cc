#!/bin/bash
# test-rehearsal.sh - a simulated failing origin (fail=, fail-file=) under a
# real nbdkit, driven by qemu-io, fio and remapctl (SPEC 3.2-3.6, 4.4).
#
#   A. writes to units whose origin writes fail succeed for the client and
#      read back, also after a restart; the origin's bytes there are never
#      changed; the data is on the spare (remapctl list);
#   B. reads of units whose origin reads fail give EIO for exactly those
#      units (neighbours read fine), the units become pending, and a
#      rewrite heals them;
#   C. fail-file= changes the failures while the server runs;
#   D. fio with verify=crc32c, 4 jobs, over a region with failing units:
#      only success, and a verify-only pass after a restart;
#   E. a full spare: ENOSPC for the next bad unit while the rest works.
#
# Exit 0 pass, 1 fail, 77 skip.

. "$(dirname "$0")/lib/common.sh"
e2e_init test-rehearsal
e2e_require qemu-io cmp dd
nbdkit "$PLUGIN" --dump-plugin | grep -q '^remap_rehearsal=yes' ||
    fail "the plugin does not offer rehearsal"
REMAPCTL=$REMAP_BUILD_DIR/remapctl

U=4096
ORIGIN=$WORK/origin.img
SPARE=$WORK/spare.img
make_file "$ORIGIN" $((8 << 20)) random
make_file "$SPARE" $((1 << 20)) zero
cp "$ORIGIN" "$WORK/original.img"

# ---- A. write failures are remapped invisibly ------------------------------
start_server a origin="$ORIGIN" spare="$SPARE" format=yes \
    fail=write:$((10 * U))+$U fail=write:$((12 * U + 512))+512 \
    fail=read:$((20 * U))+512 read-retries=1 read-retry-delay=1
qio "$URI" "write -P 0x41 $((8 * U)) $((6 * U))" \
    "write -P 0x42 $((12 * U + 700)) 100" "flush"
ok "A: a 6-unit write and a partial write over failing units succeeded"
qio "$URI" "read -P 0x41 $((8 * U)) $((4 * U + 700))" \
    "read -P 0x42 $((12 * U + 700)) 100" \
    "read -P 0x41 $((12 * U + 800)) $((2 * U - 800))"
same_bytes "$ORIGIN" $((10 * U)) "$WORK/original.img" $((10 * U)) $U ||
    fail "A: the origin's failing unit 10 was changed"
same_bytes "$ORIGIN" $((12 * U + 512)) "$WORK/original.img" $((12 * U + 512)) 512 ||
    fail "A: the origin's failing sector in unit 12 was changed"
ok "A: data reads back; the origin's failing bytes were never written"

# ---- B. read failures: EIO for exactly that unit, pending, rewrite heals ---
qio_fails "$URI" "Input/output error" "read $((20 * U)) $U"
qio "$URI" "read -P 0x41 $((8 * U)) $U" "read $((19 * U)) $U" "read $((21 * U)) $U"
ok "B: unit 20 fails with EIO, its neighbours read"
stop_server
"$REMAPCTL" list --json "$SPARE" "$ORIGIN" >"$WORK/list.json" ||
    fail "remapctl list failed"
grep -q '"origin_unit":10,' "$WORK/list.json" || { cat "$WORK/list.json"; fail "B: unit 10 not remapped"; }
grep -q '"origin_unit":12,' "$WORK/list.json" || fail "B: unit 12 not remapped"
grep -q '"origin_unit":20,[^}]*"pending"' "$WORK/list.json" || { cat "$WORK/list.json"; fail "B: unit 20 not pending"; }
ok "B: remapctl lists units 10 and 12 remapped and unit 20 pending"

start_server b origin="$ORIGIN" spare="$SPARE" fail=read:$((20 * U))+512
qio "$URI" "read -P 0x41 $((8 * U)) $((4 * U + 700))" "read -P 0x42 $((12 * U + 700)) 100"
ok "A: after a restart the remapped data reads back"
qio "$URI" "write -P 0x43 $((20 * U)) $U" "read -P 0x43 $((20 * U)) $U"
ok "B: rewriting pending unit 20 heals it (the origin still fails there)"
stop_server

# ---- C. fail-file changes the failures at run time --------------------------
FF=$WORK/faults
start_server c origin="$ORIGIN" spare="$SPARE" fail-file="$FF"
qio "$URI" "read $((40 * U)) $U"
echo "read:$((40 * U))+$U   # unit 40 starts failing" >"$FF"
sleep 0.5
qio_fails "$URI" "Input/output error" "read $((40 * U)) $U"
rm -f "$FF"
sleep 0.5
qio "$URI" "read $((41 * U)) $U"
echo "garbage" >"$FF"
sleep 0.5
grep -q "fail-file=$FF:1: fault rule" "$WORK/c.log" ||
    fail "C: a bad rule file was not reported"
qio "$URI" "write -P 0x44 $((40 * U)) $U" "read -P 0x44 $((40 * U)) $U"
ok "C: rules appear, disappear and bad files are reported while serving"
rm -f "$FF"
stop_server

# ---- D. fio verify over failing units --------------------------------------
if command -v fio >/dev/null && fio --enghelp 2>/dev/null | grep -qw nbd; then
    rules=()
    for u in 100 137 150 199 230; do rules+=("fail=write:$((u * U))+$U"); done
    start_server d origin="$ORIGIN" spare="$SPARE" "${rules[@]}"
    (cd "$WORK" && fio --name=v --ioengine=nbd --uri="$URI" --rw=randwrite \
        --bs=4k --offset=$((96 * U)) --size=$((40 * U)) --offset_increment=$((40 * U)) --numjobs=4 \
        --iodepth=8 --verify=crc32c --verify_fatal=1 --do_verify=1 \
        --group_reporting --output="$WORK/fio1.txt") ||
        { cat "$WORK/fio1.txt"; fail "D: fio write+verify failed"; }
    stop_server
    start_server d2 origin="$ORIGIN" spare="$SPARE" "${rules[@]}"
    (cd "$WORK" && fio --name=v --ioengine=nbd --uri="$URI" --rw=randwrite \
        --bs=4k --offset=$((96 * U)) --size=$((40 * U)) --offset_increment=$((40 * U)) --numjobs=4 \
        --iodepth=8 --verify=crc32c --verify_fatal=1 --verify_only=1 \
        --group_reporting --output="$WORK/fio2.txt") ||
        { cat "$WORK/fio2.txt"; fail "D: fio verify after restart failed"; }
    stop_server
    ok "D: fio (4 jobs, verify=crc32c) saw only success, also after a restart"
else
    log "D: skipped (fio without the nbd engine)"
fi

# ---- E. a full spare --------------------------------------------------------
make_file "$WORK/small.img" $((36 << 10)) zero
cp "$WORK/original.img" "$WORK/origin2.img"
rules=()
for u in 1 2 3 4 5 6 7; do rules+=("fail=write:$((u * U))+$U"); done
start_server e origin="$WORK/origin2.img" spare="$WORK/small.img" format=yes "${rules[@]}"
# A 36 KiB spare has 3 usable units (docs/FORMAT.md 4.5).
qio "$URI" "write -P 0x51 $((1 * U)) $U" "write -P 0x52 $((2 * U)) $U" \
    "write -P 0x53 $((3 * U)) $U"
qio_fails "$URI" "No space left on device" "write -P 0x54 $((4 * U)) $U"
qio "$URI" "write -P 0x57 $((9 * U)) $U" "read -P 0x57 $((9 * U)) $U" \
    "write -P 0x58 $((1 * U)) $U" "read -P 0x58 $((1 * U)) $U" \
    "read -P 0x53 $((3 * U)) $U"
stop_server
grep -q "enospc=[1-9]" "$WORK/e.log" || fail "E: the exit counters do not show the ENOSPC event"
ok "E: the 4th bad unit got ENOSPC; other writes and remapped units kept working"
E2E_RESULT=0
