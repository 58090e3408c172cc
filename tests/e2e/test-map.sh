#!/bin/bash
# test-map.sh - remapctl map: the terminal picture and the SVG.
#
# A small known table (origin 1 MiB, 256 units of 4 KiB): units 0, 1, 49,
# 100 and 201 remapped, 50 pending, 200 remapped with a lost granule (a
# rehearsal rule fails its first sector while it is copied).  Then:
# - golden pictures (tests/data/map/) at one unit per cell (32x8), four
#   units per cell (16x4: a cell shows its worst unit, so 48-51 is P and
#   200-203 is X), and sized from COLUMNS/LINES (20x10 -> 3 units per cell);
# - offline (the files) and online (control socket) pictures are equal;
# - --svg: parsed by python3's xml.etree; one <rect> per cell in g#cells,
#   as many of each class as the text picture has of each mark; a legend
#   entry per state;
# - bad options (exit 2) and an SVG path that cannot be written (exit 1)
#   leave no file behind and change nothing.
#
# Needs: nbdkit, python3, cmp.  Exit 0 pass, 1 fail, 77 skip.

. "$(dirname "$0")/lib/common.sh"
e2e_init test-map
e2e_require python3 cmp
nbdkit "$PLUGIN" --dump-plugin 2>/dev/null | grep -q '^remap_control=yes$' ||
    skip "the plugin has no control socket"
G=$REMAP_SOURCE_DIR/tests/data/map
U=4096
O=$WORK/origin.img
S=$WORK/spare.img
C=$WORK/ctl.sock
make_file "$O" $((1 << 20)) zero
make_file "$S" $((1 << 20)) zero
expect 0 format "$O" "$S" --unit $U
start_server srv "$O" spare="$S" control="$C" fail=read:$((200 * U))+512
expect 0 remap -c "$C" -u 200
grep -q "recorded as lost" <<<"$OUT" || fail "unit 200 lost nothing: $OUT"
for u in 0 1 49 100 201; do expect 0 remap -c "$C" -u $u; done
expect 0 pending -c "$C" -u 50

# golden NAME ARGS...: map ARGS must print tests/data/map/NAME.txt, with
# the origin's name replaced by ORIGIN.  REMAP_UPDATE_GOLDEN=1 rewrites
# the goldens instead of comparing (then read them before committing).
golden() {
    local name=$1
    shift
    expect 0 map "$@"
    sed "1s|^map of .*origin\.img:|map of ORIGIN:|" <<<"$OUT" >"$WORK/$name.txt"
    # REMAP_UPDATE_GOLDEN=1 rewrites the goldens (then read them yourself).
    [ "${REMAP_UPDATE_GOLDEN:-0}" = 1 ] && cp "$WORK/$name.txt" "$G/$name.txt"
    if ! cmp -s "$WORK/$name.txt" "$G/$name.txt"; then
        diff -u "$G/$name.txt" "$WORK/$name.txt"
        fail "map $* differs from $G/$name.txt"
    fi
}
golden cells-1 -c "$C" --columns 32 --rows 8
golden cells-4 -c "$C" --columns 16 --rows 4
COLUMNS=20 LINES=10 golden terminal-20x10 -c "$C"
ok "online: three golden pictures (1, 4 and 3 units per cell)"

# SVG, online, the 16x4 grid.
expect 0 map -c "$C" --columns 16 --rows 4 --svg "$WORK/map.svg"
grep -q "wrote $WORK/map.svg: 64 cells" <<<"$OUT" || fail "svg note: $OUT"
python3 - "$WORK/map.svg" "$G/cells-4.txt" <<'PY' || fail "the SVG does not match the picture"
import sys
import xml.etree.ElementTree as ET
ns = {"s": "http://www.w3.org/2000/svg"}
root = ET.parse(sys.argv[1]).getroot()
assert root.tag == "{http://www.w3.org/2000/svg}svg", root.tag
cells = root.find("s:g[@id='cells']", ns)
rects = cells.findall("s:rect", ns)
assert len(rects) == 64, len(rects)
grid = [l.rstrip("\n") for l in open(sys.argv[2]).readlines()[1:5]]
marks = "".join(grid)
want = {"ok": marks.count("."), "remapped": marks.count("R"),
        "pending": marks.count("P"), "lost": marks.count("X")}
got = {k: sum(r.get("class") == k for r in rects) for k in want}
assert got == want, (got, want)
# Cell i of the text is rect i: same place, same state.
names = {".": "ok", "R": "remapped", "P": "pending", "X": "lost"}
xs = sorted({int(r.get("x")) for r in rects})
ys = sorted({int(r.get("y")) for r in rects})
assert len(xs) == 16 and len(ys) == 4, (len(xs), len(ys))
for r in rects:
    col, row = xs.index(int(r.get("x"))), ys.index(int(r.get("y")))
    assert names[grid[row][col]] == r.get("class"), (row, col)
legend = root.find("s:g[@id='legend']", ns)
assert len(legend.findall("s:rect", ns)) == 4
texts = [t.text for t in legend.findall("s:text", ns)]
assert any(t.startswith("lost: 1 unit, 1 cell") for t in texts), texts
assert "16 KiB" in "".join(t.text or "" for t in root.findall("s:text", ns))
print("svg ok:", got)
PY
ok "SVG: 64 cells, classes and places equal the text picture, legend of 4"

# The SVG escapes what XML needs.
expect 0 map -c "$C" --svg - --columns 8 --rows 2
python3 -c 'import sys, xml.etree.ElementTree as E; E.fromstring(sys.stdin.read())' <<<"$OUT" ||
    fail "--svg - is not XML"

# ---- errors change nothing ---------------------------------------------------------
for bad in "--columns 0" "--rows x" "--svg" "--bogus" "extra"; do
    # shellcheck disable=SC2086
    expect 2 map -c "$C" $bad
    grep -qi "usage\|want\|needs\|unexpected" <<<"$ERR" || fail "map $bad: message: $ERR"
done
expect 1 map -c "$C" --svg "$WORK/no/such/dir/x.svg"
grep -q "cannot create $WORK/no/such/dir/x.svg" <<<"$ERR" || fail "message: $ERR"
ok "bad options exit 2, an unwritable SVG path exits 1 with its name"

stop_server
# ---- offline: the same pictures from the files ----------------------------------------
golden cells-4 -s "$S" -o "$O" --columns 16 --rows 4
golden cells-1 "$S" "$O" --columns 32 --rows 8
ok "offline pictures equal the online ones"
E2E_RESULT=0
