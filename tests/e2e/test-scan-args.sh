#!/bin/bash
# test-scan-args.sh - remapctl scan refuses numbers it cannot hold: an LBA,
# COUNT or size that wraps 2^64 (alone, by its K/M/G suffix, or times the
# sectors of a unit with -u), or a sign, is a usage error (exit 2) that
# names the bad value, not a scan of some other range.  Before, "scan -u
# 2305843009213693952" (2^61 units = 2^64 sectors) scanned from LBA 0 and
# exited 0; "-u 0 2305843009213693953" scanned one unit.
#
# Needs: nothing but remapctl (offline).  Exit 0 pass, 1 fail, 77 skip.

. "$(dirname "$0")/lib/common.sh"
e2e_init test-scan-args

RC=$REMAP_BUILD_DIR/remapctl
[ -x "$RC" ] || fail "$RC not found: build first"
O=$WORK/origin.img
S=$WORK/spare.img
make_file "$O" $((4 << 20)) random
make_file "$S" $((1 << 20)) zero
expect 0 format "$O" "$S" --unit 4096

bad() {
    expect 2 scan "$@" -s "$S" -o "$O" --no-progress --json
    [ -z "$OUT" ] || fail "scan $* printed a result: $OUT"
    grep -q "bad \|past the end" <<<"$ERR" || fail "scan $*: message: $ERR"
}
bad -u 2305843009213693952                  # 2^61 units: 2^64 sectors
bad -u 0 2305843009213693953                # count wraps to one unit
bad 17179869184G                            # 2^34 G = 2^64
bad 18446744073709551616                    # 2^64
bad 0 " -1"                                 # a sign, after a blank
bad 0 +8                                    # a sign
bad 0 8 --rate 17179869184G                 # would mean "no limit"
bad 0 8 --chunk 18014398509481984K          # 2^54 K = 2^64
ok "numbers that wrap, and signs, are usage errors"

# The same ranges in range still work, with and without suffixes.
expect 0 scan -u 1023 1 -s "$S" -o "$O" --no-progress --json
grep -q '"read_units":1,' <<<"$OUT" || fail "one unit: $OUT"
expect 0 scan 4K 8 -s "$S" -o "$O" --no-progress --rate 64M --chunk 1MiB
grep -q "LBA 4096-4103" <<<"$OUT" || fail "4K is LBA 4096: $OUT"
ok "in-range numbers, suffixes"

E2E_RESULT=0
