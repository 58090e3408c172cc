#!/bin/bash
# remap: scale benchmark (issue 9): format, open, memory and commit cost for
# a 64 GiB sparse spare file and a 1 TiB NBD memory spare, with 0, 1,000
# and 1,000,000 remaps in the table, 4 KiB units.  Not a test: it never
# fails on a number.  docs/BENCHMARKS.md ("Scale (issue 9)") has the method
# and the results.
#
#   scripts/bench-scale.sh [options]
#
#   --remaps LIST     remap counts (default 0,1000,1000000)
#   --spares LIST     file, nbd or both (default file,nbd)
#   --commits C       commits timed per row (default 1000)
#   --opens N         warm opens timed per row (default 5)
#   --unit N          unit in bytes (default 4096)
#   --populate MODE   copy (default) or nocopy: how the table is filled
#                     (see below)
#   --dir DIR         where the spare file goes (default /var/tmp: a real
#                     disk, so every commit's fdatasync costs what it costs)
#   --file-size S     size of the spare file (default 64G)
#   --nbd-size S      size of the NBD memory spare (default 1T)
#   --origin-size S   size of the NBD memory origin (default 16T)
#   --out DIR         where the raw results go (default
#                     /tmp/remap-scale-YYYYmmdd-HHMMSS)
#
# What it does: builds bench_scale (tests/bench/bench_scale.c) in
# build-bench/ (Release, no sanitizer), starts `nbdkit -U SOCK memory 16T'
# as the origin of every row, and for each row gives bench_scale a fresh
# spare: a new sparse file (truncate -s 64G, formatted with the sparse
# opt-out, so no host space is allocated up front) or a new
# `nbdkit -U SOCK memory 1T'.  Each row: format (timed, bytes counted),
# populate R remaps (not timed: through a wrapper whose flush is a no-op),
# open cold and warm, bytes read by an open, the engine's memory (a child
# process), then C timed commits with real flushes.  Prints progress, each
# row as it finishes, and at the end the table of the issue.
#
# Population: --populate copy (the default) remaps with flags 0, reading
# each unit from the origin, so the table holds ordinary remaps;
# --populate nocopy uses REMAP_REMAP_NOCOPY, which is faster but records
# every granule of every unit as lost, and the engine keeps lost masks in
# a side map: measured at 1,000,000 remaps that adds about 33 bytes of
# memory per remap, which real remaps do not cost.
#
# Host space and memory: the population writes one data unit per remap,
# so 1,000,000 remaps of 4 KiB put 3.8 GiB in the spare file (or in the
# spare nbdkit's memory), plus the table blocks.
#
# Needs nbdkit (memory plugin), libnbd (remap built with it), python3 for
# the table.  Environment: REMAP_JOBS (build parallelism, default 2),
# REMAP_BENCH_BUILD (build directory, default build-bench).

set -eu
cd "$(dirname "$0")/.."
root=$(pwd)
build=${REMAP_BENCH_BUILD:-$root/build-bench}
jobs=${REMAP_JOBS:-2}

remaps=0,1000,1000000
spares=file,nbd
commits=1000
opens=5
unit=4096
populate=copy
dir=/var/tmp
file_size=64G
nbd_size=1T
origin_size=16T
out=/tmp/remap-scale-$(date +%Y%m%d-%H%M%S)

usage () {
  sed -n '2,/^$/p' "$0" | sed 's/^# \{0,1\}//'
  exit "${1:-2}"
}

while [ $# -gt 0 ]; do
  case $1 in
    --remaps) remaps=$2; shift 2 ;;
    --spares) spares=$2; shift 2 ;;
    --commits) commits=$2; shift 2 ;;
    --opens) opens=$2; shift 2 ;;
    --unit) unit=$2; shift 2 ;;
    --populate) populate=$2; shift 2 ;;
    --dir) dir=$2; shift 2 ;;
    --file-size) file_size=$2; shift 2 ;;
    --nbd-size) nbd_size=$2; shift 2 ;;
    --origin-size) origin_size=$2; shift 2 ;;
    --out) out=$2; shift 2 ;;
    -h|--help) usage 0 ;;
    *) echo "bench-scale.sh: unknown option $1" >&2; usage ;;
  esac
done

for s in ${spares//,/ }; do
  case $s in file|nbd) ;; *) echo "bench-scale.sh: spare '$s' is neither file nor nbd" >&2; exit 2 ;; esac
done
command -v nbdkit >/dev/null || { echo "bench-scale.sh: needs nbdkit" >&2; exit 1; }
command -v python3 >/dev/null || { echo "bench-scale.sh: needs python3" >&2; exit 1; }

echo "bench-scale: building bench_scale in $build (Release)" >&2
cmake -S "$root" -B "$build" -DCMAKE_BUILD_TYPE=Release -DREMAP_SANITIZE= \
      -DREMAP_FUZZ=OFF -DBUILD_TESTING=OFF >/dev/null
cmake --build "$build" -j"$jobs" --target bench_scale >/dev/null
bench=$build/tests/bench/bench_scale

mkdir -p "$out"
results=$out/results.txt
: >"$results"
tmp=$(mktemp -d /tmp/remap-scale.XXXXXX)
origin_pid= spare_pid= spare_file=

# Stop exactly the server we started (TERM, KILL after 5 s).
stop () {
  local pid=$1
  [ -n "$pid" ] || return 0
  kill "$pid" 2>/dev/null || return 0
  for _ in $(seq 50); do
    kill -0 "$pid" 2>/dev/null || { wait "$pid" 2>/dev/null || true; return 0; }
    sleep 0.1
  done
  kill -KILL "$pid" 2>/dev/null || true
  wait "$pid" 2>/dev/null || true
}

cleanup () {
  stop "$spare_pid"
  stop "$origin_pid"
  [ -z "$spare_file" ] || rm -f "$spare_file"
  rm -rf "$tmp"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

# start_memory SOCK SIZE: start a memory export on SOCK (in this shell, not
# a subshell, so that it stays our child); its PID goes to $started.
started=
start_memory () {
  local sock=$1 size=$2
  rm -f "$sock"
  nbdkit -f -U "$sock" memory "$size" >"$sock.log" 2>&1 &
  started=$!
  for _ in $(seq 100); do
    if [ -S "$sock" ] && { ! command -v nbdinfo >/dev/null ||
                           nbdinfo --size "nbd+unix:///?socket=$sock" >/dev/null 2>&1; }; then
      return 0
    fi
    kill -0 "$started" 2>/dev/null || break
    sleep 0.1
  done
  echo "bench-scale.sh: nbdkit memory $size did not start:" >&2
  cat "$sock.log" >&2
  return 1
}

start_memory "$tmp/origin.sock" "$origin_size"
origin_pid=$started
origin_uri="nbd+unix:///?socket=$tmp/origin.sock"

{
  echo "# remap $(git -C "$root" describe --always --dirty 2>/dev/null || echo '?')" \
       "on $(uname -srm), $(nproc) CPUs, load $(cut -d' ' -f1-3 /proc/loadavg)," \
       "$dir on $(df -PT "$dir" 2>/dev/null | awk 'NR==2 {print $2}'), $(date -u '+%F %T UTC')"
  echo "# nbdkit $(nbdkit --version 2>/dev/null | awk '{print $2}'), origin: nbdkit memory $origin_size," \
       "populate=$populate, unit=$unit, $commits commits, $opens warm opens"
} | tee -a "$results"

nrows=0
for s in ${spares//,/ }; do for r in ${remaps//,/ }; do nrows=$((nrows + 1)); done; done
row=0
for s in ${spares//,/ }; do
  for r in ${remaps//,/ }; do
    row=$((row + 1))
    echo "bench-scale: [$row/$nrows] $s spare, $r remaps, started $(date +%T)" >&2
    t0=$(date +%s)
    extra=()
    if [ "$s" = file ]; then
      spare_file=$dir/remap-scale-$$.img
      rm -f "$spare_file"
      truncate -s "$file_size" "$spare_file"
      spare_spec=$spare_file
      label=file-$file_size
      extra=(--sparse)
    else
      start_memory "$tmp/spare.sock" "$nbd_size"
      spare_pid=$started
      spare_spec="nbd+unix:///?socket=$tmp/spare.sock"
      label=nbd-$nbd_size
    fi
    if ! "$bench" --unit "$unit" --remaps "$r" --commits "$commits" \
         --opens "$opens" --populate "$populate" --label "$label" \
         "${extra[@]}" "$origin_uri" "$spare_spec" | tee -a "$results"; then
      echo "bench-scale: [$row/$nrows] $s spare, $r remaps FAILED" \
           "(command: $bench --unit $unit --remaps $r --commits $commits" \
           "--opens $opens --populate $populate --label $label ${extra[*]}" \
           "$origin_uri $spare_spec)" | tee -a "$results" >&2
    fi
    if [ "$s" = file ]; then
      echo "# spare file used $(du -h "$spare_file" | cut -f1) of host space" | tee -a "$results"
      rm -f "$spare_file"
      spare_file=
    else
      stop "$spare_pid"
      spare_pid=
    fi
    echo "bench-scale: [$row/$nrows] done in $(( $(date +%s) - t0 )) s" >&2
  done
done

python3 - "$results" <<'EOF' | tee "$out/summary.md"
import sys

rows = []
for line in open(sys.argv[1]):
    if not line.startswith("scale "):
        continue
    kv = dict(f.split("=", 1) for f in line.split()[1:])
    rows.append(kv)

def mib(b):
    b = float(b)
    if abs(b) >= 1 << 20:
        return "%.1f MiB" % (b / (1 << 20))
    return "%.0f KiB" % (b / 1024)

def name(kv):
    kind, size = kv["spare"].split("-", 1)
    return ("%s file" if kind == "file" else "%s NBD") % size.replace("G", " GiB").replace("T", " TiB")

empty = {r["spare"]: r for r in rows if r["remaps"] == "0"}
print()
print("| spare | remaps | format time / bytes written | open time (warm, cold) | RSS | commit p50/p99 |")
print("|---|--:|---|---|---|---|")
for r in rows:
    print("| %s | %s | %.3f s / %s | %.1f ms, %.1f ms | +%s (process %s) | %.2f / %.2f ms |" % (
        name(r), "{:,}".format(int(r["remaps"])), float(r["format_s"]),
        mib(r["format_written_bytes"]), float(r["open_warm_ms"]),
        float(r["open_cold_ms"]), mib(r["rss_bytes"]), mib(r["rss_total_bytes"]),
        float(r["commit_p50_ms"]), float(r["commit_p99_ms"])))
print()
print("| spare | remaps | populate | open reads | heap | RSS/remap | heap/remap | commit mean | meta units/commit |")
print("|---|--:|--:|--:|--:|--:|--:|--:|--:|")
for r in rows:
    n = int(r["remaps"])
    e = empty.get(r["spare"])
    if n and e:
        per = "%.1f B" % ((int(r["rss_bytes"]) - int(e["rss_bytes"])) / n)
        perh = "%.1f B" % ((int(r["heap_bytes"]) - int(e["heap_bytes"])) / n)
    else:
        per = perh = "-"
    rate = n / float(r["populate_s"]) if n and float(r["populate_s"]) > 0 else 0
    print("| %s | %s | %s | %s in %s | +%s | %s | %s | %.2f ms | %s |" % (
        name(r), "{:,}".format(n),
        ("%.0f s (%.0f/s)" % (float(r["populate_s"]), rate)) if n else "-",
        mib(r["open_read_bytes"]), r["open_reads"], mib(r["heap_bytes"]),
        per, perh, float(r["commit_mean_ms"]), r["commit_meta_units"]))
EOF
echo "bench-scale: raw results in $results, table in $out/summary.md" >&2
