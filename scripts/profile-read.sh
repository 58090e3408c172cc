#!/usr/bin/env bash
# profile-read.sh - where a read-heavy server's CPU goes (issue 12).
#
# Not a test.  For each SERVER (file, remap0, remap10) starts nbdkit on a
# 1 GiB cached origin, runs four 5 s fio read workloads (rr4k_qd1,
# rr4k_qd32, rr4k_4conn_qd8, sr1m_qd8), prints IOPS, MiB/s and the server's
# CPU (utime+stime from /proc/PID/stat) per GiB, and with --perf records
# each workload with `perf record -g` (software cpu-clock samples: this
# guest has no PMU) into OUT/SERVER.WORKLOAD.perf.data.  remap10 starts on
# a copy of a spare template with every 10th unit remapped (made once, in
# SCRATCH, about a minute).  The figures have no ramp and one run each:
# use scripts/bench.sh for comparisons, this for profiles.
#
#   scripts/profile-read.sh [--perf] [--scratch DIR] [--out DIR] SERVER...
#   perf report -i OUT/remap10.sr1m_qd8.perf.data --no-children --sort dso,symbol
set -uo pipefail

HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
PLUGIN=${PLUGIN:-$HERE/../build/remap.so}
SCRATCH=/var/tmp/remap-profile
OUT=/tmp/remap-profile-$(date +%Y%m%d-%H%M%S)
PERF=0
die() { echo "profile-read.sh: $*" >&2; exit 1; }
while [[ $# -gt 0 ]]; do
  case $1 in
    --perf) PERF=1; shift ;;
    --scratch) SCRATCH=$2; shift 2 ;;
    --out) OUT=$2; shift 2 ;;
    -h|--help) sed -n '2,/^set -uo/{/^#/s/^# \{0,1\}//p}' "$0"; exit 0 ;;
    -*) die "unknown option $1" ;;
    *) break ;;
  esac
done
[[ $# -gt 0 ]] || die "name at least one server: file, remap0, remap10"
for t in nbdkit fio nbdinfo python3; do command -v $t > /dev/null || die "$t not found"; done
(( PERF == 0 )) || command -v perf > /dev/null || die "perf not found"
[[ -f $PLUGIN ]] || die "plugin $PLUGIN not found (build first)"
mkdir -p "$SCRATCH" "$OUT" || die "cannot create $SCRATCH or $OUT"
D=$SCRATCH SOCK=$SCRATCH/p.$$.sock
URI="nbd+unix:///?socket=$SOCK"
if [[ ! -f $D/origin.img || $(stat -c %s "$D/origin.img") != 1073741824 ]]; then
  head -c 1G /dev/urandom > "$D/origin.img" || die "cannot create $D/origin.img"
fi
PID=""
stop() { [[ -n $PID ]] && kill "$PID" 2>/dev/null && wait "$PID" 2>/dev/null; PID=""; rm -f "$SOCK"; }
trap stop EXIT
up() {  # cmd...: start, wait for the export
  "$@" > "$OUT/server.log" 2>&1 < /dev/null &
  PID=$!
  for _ in $(seq 1200); do
    kill -0 "$PID" 2>/dev/null || die "server died: $(tail -2 "$OUT/server.log")"
    [[ -S $SOCK ]] && nbdinfo --size "$URI" > /dev/null 2>&1 && return 0
    sleep 0.05
  done
  die "server did not come up"
}
ticks() { local l; read -r l < "/proc/$1/stat"; l=${l##*) }; set -- $l; echo $(( ${12} + ${13} )); }

if [[ " $* " == *" remap10 "* && ! -f $D/spare10.tpl ]]; then
  python3 "$HERE/benchlib.py" badblocks --size 1073741824 --unit 4096 --every 10 > "$D/bb10.txt"
  rm -f "$D/spare.img"; truncate -s 160M "$D/spare.img"
  echo "making $D/spare10.tpl (26,215 remaps)..." >&2
  up nbdkit -f -U "$SOCK" "$PLUGIN" origin="$D/origin.img" spare="$D/spare.img" format=yes \
     badblocks="$D/bb10.txt" badblocks-block-size=4096
  stop
  mv "$D/spare.img" "$D/spare10.tpl"
fi

for S in "$@"; do
  sync "$D/origin.img"; dd if="$D/origin.img" iflag=nocache count=0 status=none
  fio --name=warm --filename="$D/origin.img" --ioengine=io_uring --rw=randread --bs=4k \
      --iodepth=64 --size=1G --fadvise_hint=random --invalidate=0 --output=/dev/null > /dev/null 2>&1
  case $S in
    file) up nbdkit -f -U "$SOCK" file "$D/origin.img" ;;
    remap0) rm -f "$D/spare.img"; truncate -s 160M "$D/spare.img"
            up nbdkit -f -U "$SOCK" "$PLUGIN" origin="$D/origin.img" spare="$D/spare.img" format=yes ;;
    remap10) cp "$D/spare10.tpl" "$D/spare.img" && sync "$D/spare.img"
             up nbdkit -f -U "$SOCK" "$PLUGIN" origin="$D/origin.img" spare="$D/spare.img" ;;
    *) die "unknown server $S (file, remap0, remap10)" ;;
  esac
  for w in "rr4k_qd1 randread 4k 1 1" "rr4k_qd32 randread 4k 32 1" \
           "rr4k_4conn_qd8 randread 4k 8 4" "sr1m_qd8 read 1M 8 1"; do
    read -r n rw bs qd j <<< "$w"
    k0=$(ticks "$PID") pp=""
    if (( PERF )); then
      perf record -F 2000 -g -p "$PID" -o "$OUT/$S.$n.perf.data" -- sleep 5 > /dev/null 2>&1 &
      pp=$!
    fi
    fio --name="$n" --ioengine=nbd --uri="$URI" --rw="$rw" --bs="$bs" --iodepth="$qd" \
        --numjobs="$j" --size=1G --time_based --runtime=5 --norandommap --randrepeat=1 \
        --group_reporting --output-format=json --output="$OUT/$S.$n.json" > /dev/null 2>&1 \
      || die "fio $n failed"
    k1=$(ticks "$PID")
    [[ -n $pp ]] && wait "$pp"
    python3 - "$OUT/$S.$n.json" "$k0" "$k1" "$S" "$n" "$(getconf CLK_TCK)" <<'PY' | tee -a "$OUT/results.txt"
import json, sys
j = json.load(open(sys.argv[1]))["jobs"][0]["read"]
cpu = (int(sys.argv[3]) - int(sys.argv[2])) / int(sys.argv[6])
gib = j["io_bytes"] / 2**30
print("%-8s %-15s %9.0f IOPS %7.0f MiB/s  server CPU %5.2f s  %.3f s/GiB"
      % (sys.argv[4], sys.argv[5], j["iops"], j["bw_bytes"] / 2**20, cpu, cpu / gib))
PY
  done
  stop
done
echo "results: $OUT" >&2
