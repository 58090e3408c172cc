#!/bin/bash
# test-params.sh - the plugin's interface as scripts see it:
#   - --dump-plugin keys (remap_version, remap_unit_default, ...);
#   - --help lists every parameter;
#   - badblocks= lists are converted from their block size to units
#     (1 KiB blocks on 4 KiB units, 4 KiB blocks on 512-byte units);
#   - remap= byte ranges, overlapping and repeated items, already-remapped
#     units on a restart;
#   - -D remap.meta=1, direct=yes, enospc=eio, read-retries= are accepted and
#     the export works with them.
#
# Needs: nbdkit, qemu-io.  Exit 0 pass, 1 fail, 77 skip.

. "$(dirname "$0")/lib/common.sh"
e2e_init test-params
e2e_require qemu-io

dump=$(nbdkit "$PLUGIN" --dump-plugin) || fail "--dump-plugin"
for key in name=remap api_version=2 thread_model=parallel magic_config_key=origin \
           'remap_version=[0-9]' remap_unit_default=4096 'remap_io_uring=(yes|no)$' \
           'remap_nbd_backend=(yes|no)$' 'remap_control=(yes|no)$' \
           remap_strategies=minimal,linear,geometric; do
    printf '%s\n' "$dump" | grep -Eq "^$key" || fail "--dump-plugin lacks $key"
done
ok "--dump-plugin: name, api v2, parallel, magic key origin, remap_* keys"

help=$(nbdkit "$PLUGIN" --help 2>&1) || fail "--help"
for p in origin= spare= format= unit= strategy= copies= direct= remap= \
         badblocks= badblocks-block-size= read-retries= enospc= control=; do
    printf '%s\n' "$help" | grep -q -- "$p" || fail "--help does not mention $p"
done
ok "--help mentions every parameter"

# remapped_units LOG: the sorted origin units the log says were remapped.
remapped_units() {
    sed -n 's/.*remap: unit \([0-9][0-9]*\) -> spare unit.*/\1/p' "$1" | sort -n | tr '\n' ' '
}

make_file "$WORK/o1.img" $((4 << 20)) random
make_file "$WORK/s1.img" $((4 << 20)) zero
# 1 KiB blocks: 40,41 -> unit 10; 43 -> 10; 44 -> 11; 4095 -> 1023.
printf '40\n41\n\n# a comment\n43\n44\n4095\n' >"$WORK/bb1.txt"
start_server bb1 -D remap.meta=1 -- "$WORK/o1.img" spare="$WORK/s1.img" format=yes \
    badblocks="$WORK/bb1.txt" remap=1M+1 remap=7,7,6-8
got=$(remapped_units "$WORK/bb1.log")
[ "$got" = "6 7 8 10 11 256 1023 " ] || fail "badblocks (1 KiB) + remap=: got units '$got'"
ok "badblocks 1 KiB blocks 40,41,43,44,4095 -> units 10,11,1023; remap=1M+1 -> 256; 7,7,6-8 -> 6,7,8 once each"
grep -q "remap: engine: unit 6 -> spare unit" "$WORK/bb1.log" ||
    fail "-D remap.meta=1 did not show the engine's debug messages"
ok "-D remap.meta=1 shows the engine's own debug messages"
qio "$URI" "write -P 0x42 $((10 * 4096 - 100)) 300" "read -P 0x42 $((10 * 4096 - 100)) 300"
stop_server

start_server bb1b -- "$WORK/o1.img" spare="$WORK/s1.img" badblocks="$WORK/bb1.txt" \
    badblocks-block-size=1024
[ -z "$(remapped_units "$WORK/bb1b.log")" ] || fail "restart remapped units again"
grep -q "remap: unit 10 already on spare unit" "$WORK/bb1b.log" || fail "restart: unit 10 not found"
qio "$URI" "read -P 0x42 $((10 * 4096 - 100)) 300"
stop_server
ok "restart with the same list: nothing remapped twice, data intact"

make_file "$WORK/o2.img" $((1 << 20)) random
make_file "$WORK/s2.img" $((1 << 20)) zero
printf '3\n' >"$WORK/bb2.txt"
start_server bb2 -- "$WORK/o2.img" spare="$WORK/s2.img" format=yes unit=512 \
    badblocks="$WORK/bb2.txt" badblocks-block-size=4096 direct=yes enospc=eio \
    read-retries=0 read-retry-delay=1
got=$(remapped_units "$WORK/bb2.log")
[ "$got" = "24 25 26 27 28 29 30 31 " ] || fail "badblocks (4 KiB on 512 B units): got '$got'"
ok "badblocks 4 KiB block 3 -> 512-byte units 24..31"
qio "$URI" "write -P 0x17 12000 1000" "read -P 0x17 12000 1000" "flush"
stop_server
ok "direct=yes, enospc=eio, read-retries=0 accepted; I/O works"
E2E_RESULT=0
