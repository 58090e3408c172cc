#!/usr/bin/env bash
# bench.sh - benchmark the remap nbdkit plugin against nbdkit's file plugin.
#
# Not a test (ctest never runs it).  Both servers serve the same origin file;
# runs alternate A/B, B/A, A/B, ... (A = remap, B = file) so slow drift of the
# machine hits both sides alike, and every workload's result is reported as
# the median over the pairs of the per-pair ratio remap/file, with min-max.
# docs/BENCHMARKS.md describes the method and holds the latest results.
#
#   scripts/bench.sh [options]
#
# Options:
#   -n N               interleaved pairs per remap fraction [3]
#   --runtime S        measured seconds per fio workload [4]
#   --ramp S           fio ramp (not measured) before that [1]
#   --workloads LIST   comma list, see --list [all]
#   --remapped LIST    percentages of units remapped at start [0,1,10]
#                      (1 = every 100th unit, 10 = every 10th).  The remaps
#                      are made once per fraction into a template spare
#                      (remap=LIST or, when the list is long, a badblocks
#                      file), and every remap run starts on a fresh copy of
#                      it: 26,000 start-time remaps take minutes.
#   --direct           cold origin: remap with direct=yes against the file
#                      plugin with cache=none (nbdkit 1.32's file plugin has
#                      no O_DIRECT; cache=none drops the pages it read or
#                      wrote), the origin's and spare's pages dropped before
#                      every workload, no warm-up
#   --quick            1 pair, 2 s runtime (a smoke run of the script)
#   --out DIR          results [/tmp/remap-bench-YYYYmmdd-HHMMSS]
#   --scratch DIR      origin/src/spare files [/var/tmp/remap-bench]
#   --plugin PATH      [build/remap.so of this repository]
#   --size SZ          origin size [1G]     --spare-size SZ  [64M]
#   --no-verify        skip reading the export back after copy_in
#   --wait-quiet S     before each server run wait up to S s for the machine
#                      to be idle (< 0.2 cores busy) [0 = do not wait]
#   --max-other C      drop a pair from a row's ratios if either side saw
#                      more than C cores of foreign CPU load [keep all]
#   --list             list the workloads and exit
#
# The sparse_* rows copy a second, half-sparse origin (SCRATCH/sparse.img:
# 4 MiB of random data, then a 4 MiB hole, and so on) out of a server of
# its own, started after the other rows, with nbdcopy (to null:) and with
# qemu-img convert (to a null-co target): both skip what block status calls
# a hole, so these rows measure extents (remap's units remapped at start
# lie in its holes as well as in its data).  Their remap server starts on
# a copy of a template spare of its own, made over sparse.img (a template
# made over origin.img would hold origin.img's bytes for the remapped units).
#
# Needs nbdkit (file plugin), fio with the nbd engine, nbdcopy and nbdinfo
# (libnbd), util-linux fincore, python3; qemu-img for sparse_qemu.  Output: per-run JSON in OUT/runs/,
# fio JSON and logs in OUT/raw/, OUT/summary.{md,json}; the table is printed.
set -uo pipefail

HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
ROOT=$(cd "$HERE/.." && pwd)
LIB="$HERE/benchlib.py"
PY=${PYTHON:-python3}

PAIRS=3
RUNTIME=4
RAMP=1
WORKLOADS=all
REMAPPED=0,1,10
MODE=cached
OUT=""
SCRATCH=/var/tmp/remap-bench
PLUGIN=$ROOT/build/remap.so
SIZE=1G
SPARE_SIZE=64M
UNIT=4096
VERIFY=1
WAIT_QUIET=0
MAX_OTHER=""

# name kind rw bs iodepth numjobs  (numjobs = NBD connections)
WORKLOAD_TABLE=(
  "copy_in         copy in        -  -  -"
  "rr4k_qd1        fio  randread  4k 1  1"
  "rr4k_qd32       fio  randread  4k 32 1"
  "rw4k_qd32       fio  randwrite 4k 32 1"
  "sr1m_qd8        fio  read      1M 8  1"
  "sw1m_qd8        fio  write     1M 8  1"
  "mix4k_qd16      fio  randrw    4k 16 1"
  "rr4k_4conn_qd8  fio  randread  4k 8  4"
  "rw4k_4conn_qd8  fio  randwrite 4k 8  4"
  "copy_out        copy out       -  -  -"
  "sparse_nbdcopy  sparse nbdcopy -  -  -"
  "sparse_qemu     sparse qemu    -  -  -"
)

die() { echo "bench.sh: $*" >&2; exit 1; }
log() { echo "[$(date -u +%H:%M:%S)] $*" >&2; }

while [[ $# -gt 0 ]]; do
  case $1 in
    -n) PAIRS=$2; shift 2 ;;
    --runtime) RUNTIME=$2; shift 2 ;;
    --ramp) RAMP=$2; shift 2 ;;
    --workloads) WORKLOADS=$2; shift 2 ;;
    --remapped) REMAPPED=$2; shift 2 ;;
    --direct) MODE=direct; shift ;;
    --quick) PAIRS=1; RUNTIME=2; shift ;;
    --out) OUT=$2; shift 2 ;;
    --scratch) SCRATCH=$2; shift 2 ;;
    --plugin) PLUGIN=$2; shift 2 ;;
    --size) SIZE=$2; shift 2 ;;
    --spare-size) SPARE_SIZE=$2; shift 2 ;;
    --no-verify) VERIFY=0; shift ;;
    --wait-quiet) WAIT_QUIET=$2; shift 2 ;;
    --max-other) MAX_OTHER=$2; shift 2 ;;
    --list) printf '%s\n' "${WORKLOAD_TABLE[@]}"; exit 0 ;;
    -h|--help) sed -n '2,/^set -uo/{/^#/s/^# \{0,1\}//p}' "$0"; exit 0 ;;
    *) die "unknown option $1 (see --help)" ;;
  esac
done

[[ $PAIRS =~ ^[1-9][0-9]*$ ]] || die "-n needs a positive integer"
[[ $RUNTIME =~ ^[0-9]+$ && $RAMP =~ ^[0-9]+$ ]] || die "--runtime/--ramp need whole seconds"
for t in nbdkit fio nbdcopy nbdinfo fincore "$PY"; do
  command -v "$t" > /dev/null || die "$t not found"
done
fio --enghelp 2>/dev/null | grep -qw nbd || die "this fio has no nbd engine"
[[ -f $PLUGIN ]] || die "plugin $PLUGIN not found (cmake -S . -B build && cmake --build build)"
PLUGIN=$(cd "$(dirname "$PLUGIN")" && pwd)/$(basename "$PLUGIN")
SIZE_BYTES=$(numfmt --from=iec "$SIZE") || die "bad --size"
SPARE_BYTES=$(numfmt --from=iec "$SPARE_SIZE") || die "bad --spare-size"
(( SIZE_BYTES % UNIT == 0 )) || die "--size must be a multiple of $UNIT"
names=" "
for w in "${WORKLOAD_TABLE[@]}"; do names+="${w%% *} "; done
if [[ $WORKLOADS != all ]]; then
  for w in ${WORKLOADS//,/ }; do [[ $names == *" $w "* ]] || die "unknown workload $w (see --list)"; done
fi
IFS=, read -r -a VARIANTS <<< "$REMAPPED"
for v in "${VARIANTS[@]}"; do
  [[ $v =~ ^[0-9]+$ && $v -le 100 ]] || die "--remapped takes whole percentages 0..100"
done

OUT=${OUT:-/tmp/remap-bench-$(date +%Y%m%d-%H%M%S)}
mkdir -p "$OUT/runs" "$OUT/raw" "$SCRATCH" || die "cannot create $OUT or $SCRATCH"
OUT=$(cd "$OUT" && pwd)
ORIGIN=$SCRATCH/origin.img
SPARSE=$SCRATCH/sparse.img
SRC=$SCRATCH/src.img
SPARE=$SCRATCH/spare.img
SOCK=$SCRATCH/nbd.$$.sock
URI="nbd+unix:///?socket=$SOCK"

# ------------------------------------------------------------------ files
# Fully allocated random data: nothing (zero detection, holes) skips work.
make_random() {  # file bytes
  local f=$1 n=$2
  if [[ -f $f && $(stat -c %s "$f") == "$n" && $(( $(stat -c '%b * %B' "$f") )) -ge $n ]]; then
    return 0
  fi
  log "creating $f: $n bytes of random data"
  if ! { head -c "$n" /dev/urandom > "$f.tmp" && sync "$f.tmp" && mv "$f.tmp" "$f"; }; then
    die "cannot create $f"
  fi
}
want() { [[ $WORKLOADS == all || ",$WORKLOADS," == *",$1,"* ]]; }
want_sparse() { want sparse_nbdcopy || want sparse_qemu; }
want_main() {  # a workload on the main origin is wanted
  local w fld
  for w in "${WORKLOAD_TABLE[@]}"; do
    read -r -a fld <<< "$w"
    [[ ${fld[1]} != sparse ]] && want "${fld[0]}" && return 0
  done
  return 1
}

if want_main; then
  make_random "$ORIGIN" "$SIZE_BYTES"
  make_random "$SRC" "$SIZE_BYTES"
fi

# Half-sparse: 4 MiB of random data every 8 MiB, holes between.
SPARSE_CHUNK=$((4 << 20))
make_sparse() {
  local f=$1 n=$2 o
  if [[ -f $f && $(stat -c %s "$f") == "$n" && -f $f.ok ]]; then return 0; fi
  log "creating $f: $n bytes, half of them random data, half holes"
  rm -f "$f" "$f.ok"
  truncate -s "$n" "$f" || die "cannot create $f"
  for ((o = 0; o < n; o += 2 * SPARSE_CHUNK)); do
    head -c "$SPARSE_CHUNK" /dev/urandom |
      dd of="$f" bs=1M seek=$((o >> 20)) conv=notrunc iflag=fullblock status=none ||
      die "cannot write $f"
  done
  sync "$f" && touch "$f.ok"
}
if want_sparse; then
  (( SIZE_BYTES % (2 * SPARSE_CHUNK) == 0 )) || die "--size $SIZE is not a multiple of 8M, the period of the sparse rows' origin (4 MiB data, 4 MiB hole): give a multiple of 8M or leave sparse_nbdcopy,sparse_qemu out of --workloads"
  if want sparse_qemu && ! command -v qemu-img > /dev/null; then
    [[ $WORKLOADS == all ]] || die "qemu-img not found (sparse_qemu): install it or leave sparse_qemu out of --workloads"
    log "qemu-img not found: the sparse_qemu row is left out"
    WORKLOADS=$(IFS=,; w=(); for x in "${WORKLOAD_TABLE[@]}"; do
                  x=${x%% *}; [[ $x == sparse_qemu ]] || w+=("$x"); done; echo "${w[*]}")
  fi
  make_sparse "$SPARSE" "$SIZE_BYTES"
fi

# remap= lists per variant: every (100/pct)-th unit.  A long list goes to a
# badblocks file instead of the command line.
declare -A REMAP_ARGS REMAP_COUNT
for v in "${VARIANTS[@]}"; do
  if [[ $v == 0 ]]; then REMAP_ARGS[$v]=""; REMAP_COUNT[$v]=0; continue; fi
  every=$(( 100 / v ))
  list=$("$PY" "$LIB" remap-list --size "$SIZE_BYTES" --unit "$UNIT" --every "$every") || die "remap-list failed"
  REMAP_COUNT[$v]=$(( (SIZE_BYTES / UNIT + every - 1) / every ))
  if (( ${#list} < 100000 )); then
    printf '%s\n' "$list" > "$OUT/remap-$v.list"
    REMAP_ARGS[$v]="remap=$list"
  else
    "$PY" "$LIB" badblocks --size "$SIZE_BYTES" --unit "$UNIT" --every "$every" > "$OUT/badblocks-$v.txt"
    REMAP_ARGS[$v]="badblocks=$OUT/badblocks-$v.txt badblocks-block-size=$UNIT"
  fi
done

# Spare size per variant: the default, or enough for its remapped units
# (plus a quarter and 16 MiB for metadata), whichever is larger.
declare -A SPARE_FOR TEMPLATE
for v in "${VARIANTS[@]}"; do
  need=$(( REMAP_COUNT[$v] * UNIT * 5 / 4 + 16 * 1024 * 1024 ))
  SPARE_FOR[$v]=$(( need > SPARE_BYTES ? need : SPARE_BYTES ))
done

# ------------------------------------------------------------------ page cache
# Every run starts from the same page-cache state: the origin's pages are
# dropped (this file only) and read back with 4k random reads, readahead off,
# so the file sits in 4k pages.  (Read with readahead it would sit in large
# folios, which makes every 4k buffered write several times dearer on this
# kernel and would hide the plugin's own cost.)
residency() { fincore -b -n -o RES "$1" 2>/dev/null | tr -d ' ' || echo 0; }
# Direct mode: both servers read the disk, not the page cache.
cold() { drop_cache "$ORIGIN"; [[ -f $SPARE ]] && drop_cache "$SPARE"; return 0; }
drop_cache() { sync "$1"; dd if="$1" iflag=nocache count=0 status=none 2>/dev/null; }
warm_origin() {
  fio --name=warm --filename="$ORIGIN" --ioengine=io_uring --rw=randread --bs=4k \
      --iodepth=64 --size="$SIZE_BYTES" --fadvise_hint=random --invalidate=0 \
      --output=/dev/null > /dev/null 2>&1 || log "warm-up read failed"
}

# ------------------------------------------------------------------ processes
SERVER_PID=""
SAMPLER_PID=""
stop_pid() {  # TERM, then KILL after 5 s; only PIDs this script started
  local pid=$1
  [[ -n $pid ]] || return 0
  if kill -0 "$pid" 2>/dev/null; then
    kill -TERM "$pid" 2>/dev/null
    for _ in $(seq 100); do kill -0 "$pid" 2>/dev/null || break; sleep 0.05; done
    kill -0 "$pid" 2>/dev/null && kill -KILL "$pid" 2>/dev/null
  fi
  wait "$pid" 2>/dev/null
  return 0
}
cleanup() {
  stop_pid "$SAMPLER_PID"; SAMPLER_PID=""
  stop_pid "$SERVER_PID"; SERVER_PID=""
  rm -f "$SOCK"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

ticks() {  # utime+stime of a PID in clock ticks (fields 14 and 15)
  local line rest
  read -r line < "/proc/$1/stat" || { echo 0; return; }
  rest=${line##*) }
  # shellcheck disable=SC2086  # split the fields
  set -- $rest
  echo $(( ${12} + ${13} ))
}

busy_jiffies() { awk 'NR == 1 { print $2 + $3 + $4 + $7 + $8 + $9 }' /proc/stat; }
wait_quiet() {
  local t0=$SECONDS b0 b1 hz
  hz=$(getconf CLK_TCK)
  (( WAIT_QUIET > 0 )) || return 0
  while (( SECONDS - t0 < WAIT_QUIET )); do
    b0=$(busy_jiffies); sleep 1; b1=$(busy_jiffies)
    (( (b1 - b0) * 5 < hz )) && return 0
  done
  log "machine still busy after ${WAIT_QUIET}s; running anyway"
}

# wait_ready PID LOG SECONDS: 0 once nbdinfo answers on $SOCK
wait_ready() {
  local pid=$1 i
  for ((i = 0; i < $3 * 20; i++)); do
    kill -0 "$pid" 2>/dev/null || return 1
    if [[ -S $SOCK ]] && nbdinfo --size "$URI" > "$2" 2>/dev/null; then return 0; fi
    sleep 0.05
  done
  return 1
}

# make_template VARIANT ORIGIN_FILE KEY: a spare formatted over ORIGIN_FILE
# with that variant's remaps applied at start, kept as TEMPLATE[KEY] for
# every remap run over ORIGIN_FILE to copy.
make_template() {
  local v=$1 origin=$2 key=$3 tpl log cmd
  tpl=$SCRATCH/spare-$key.tpl log=$OUT/raw/template-$key.log
  rm -f "$SPARE" "$SOCK"
  truncate -s "${SPARE_FOR[$v]}" "$SPARE" || die "cannot create $SPARE"
  cmd=(nbdkit -f -U "$SOCK" "$PLUGIN" origin="$origin" spare="$SPARE" format=yes)
  # shellcheck disable=SC2206  # word splitting wanted: key=value pairs without spaces
  [[ -n ${REMAP_ARGS[$v]} ]] && cmd+=(${REMAP_ARGS[$v]})
  log "template spare $key over $origin: ${REMAP_COUNT[$v]} remaps at start"
  "${cmd[@]}" > "$log" 2>&1 < /dev/null &
  SERVER_PID=$!
  if ! wait_ready "$SERVER_PID" "$OUT/raw/template-$key.size" 1800; then
    tail -5 "$log" >&2
    die "template $key: server did not come up (see $log)"
  fi
  stop_pid "$SERVER_PID"; SERVER_PID=""
  rm -f "$SOCK"
  mv "$SPARE" "$tpl" || die "cannot keep $tpl"
  TEMPLATE[$key]=$tpl
}

# ------------------------------------------------------------------ one run
# start_server SERVER VARIANT ORIGIN_FILE KEY W NAME SUFFIX: nbdkit over
# ORIGIN_FILE, ready to serve: remap on a fresh spare (a copy of
# TEMPLATE[KEY], or with no template (0 %) a new one formatted at start),
# or the file plugin; direct=yes / cache=none in direct mode.  Its log in
# W/server$SUFFIX.log, its description appended to W/meta$SUFFIX.env, its
# CPU sampled into W/cpu.samples$SUFFIX; sets SERVER_PID and SAMPLER_PID
# (reads the caller's $pair for meta.env).
start_server() {
  local server=$1 v=$2 origin=$3 key=$4 W=$5 name=$6 sfx=$7 exsize
  local cmd=()
  if [[ $server == remap ]]; then
    rm -f "$SPARE"
    if [[ -n ${TEMPLATE[$key]:-} ]]; then
      cp "${TEMPLATE[$key]}" "$SPARE" && sync "$SPARE" || die "cannot copy ${TEMPLATE[$key]} to $SPARE"
      cmd=(nbdkit -f -U "$SOCK" "$PLUGIN" origin="$origin" spare="$SPARE")
    else
      truncate -s "${SPARE_FOR[$v]}" "$SPARE" || die "cannot create $SPARE"
      cmd=(nbdkit -f -U "$SOCK" "$PLUGIN" origin="$origin" spare="$SPARE" format=yes)
    fi
    [[ $MODE == direct ]] && cmd+=(direct=yes)
  else
    cmd=(nbdkit -f -U "$SOCK" file "$origin")
    [[ $MODE == direct ]] && cmd+=(cache=none)
  fi
  {
    echo "server=$server"
    echo "variant=$v"
    echo "pair=$pair"
    echo "origin=$origin"
    echo "remapped_units=${REMAP_COUNT[$v]}"
    echo "mode=$MODE"
    echo "workloads=$WORKLOADS"
    echo "runtime=$RUNTIME"
    echo "ramp=$RAMP"
    echo "date=$(date -u +%Y-%m-%dT%H:%M:%SZ)"
    echo "host=$(uname -n) $(uname -r) $(nproc) cpu"
    echo "versions=$(nbdkit --version | head -1); $(fio --version); $(nbdcopy --version | head -1)"
    local shown="${cmd[*]}"
    (( ${#shown} > 400 )) && shown="${shown:0:400}...(${#shown} chars)"
    echo "server_cmd=$shown"
  } >> "$W/meta$sfx.env"

  rm -f "$SOCK"
  # A simple command in the background: $! is nbdkit itself (-f keeps it in
  # the foreground), so exactly that PID is stopped afterwards.
  "${cmd[@]}" > "$W/server$sfx.log" 2>&1 < /dev/null &
  SERVER_PID=$!
  if ! wait_ready "$SERVER_PID" "$W/export$sfx.size" 60; then
    tail -5 "$W/server$sfx.log" >&2
    die "$name: server did not come up (see $W/server$sfx.log)"
  fi
  exsize=$(cat "$W/export$sfx.size")
  [[ $exsize == "$SIZE_BYTES" ]] || die "$name: export size $exsize, expected $SIZE_BYTES"
  [[ $(cat "/proc/$SERVER_PID/comm") == nbdkit ]] || die "$name: PID $SERVER_PID is not nbdkit"
  echo "server_pid=$SERVER_PID" >> "$W/meta$sfx.env"
  "$PY" "$LIB" sample "$SERVER_PID" "$W/cpu.samples$sfx" --interval 0.05 --root $$ &
  SAMPLER_PID=$!
  # no workload before the sampler's first sample: a short row (the sparse
  # rows of a small origin take a fraction of a second) would otherwise end
  # before python3 has started, and its windows would have no samples
  local i
  for ((i = 0; i < 200; i++)); do
    [[ -s $W/cpu.samples$sfx ]] && break
    kill -0 "$SAMPLER_PID" 2>/dev/null || break
    sleep 0.05
  done
  [[ -s $W/cpu.samples$sfx ]] || log "$name: WARNING: no CPU sample after 10 s (host load columns of this run are empty)"
  log "$name: nbdkit pid $SERVER_PID ready"
}

# sparse_rows SERVER VARIANT W NAME: the sparse_* rows, on a server of their
# own over the half-sparse origin (cached: read into the page cache before;
# direct: its pages and the spare's dropped before every row).  Its CPU
# samples stay in a file of their own (the sampler's counters start again
# at zero), named in workloads.txt's third column for run-report.
sparse_rows() {
  local server=$1 v=$2 W=$3 name=$4 w wname kind how rc t0 t1 k0 k1
  # With no other rows, this server is the run's only one: its files are
  # the run's (meta.env, cpu.samples, server.log).
  local sfx=-sparse
  want_main || sfx=""
  if [[ $MODE == cached ]]; then
    (( $(residency "$SPARSE") >= SIZE_BYTES / 2 * 99 / 100 )) || cat "$SPARSE" > /dev/null
  else
    drop_cache "$SPARSE"
  fi
  start_server "$server" "$v" "$SPARSE" "sparse-v$v" "$W" "$name-sparse" "$sfx"
  for w in "${WORKLOAD_TABLE[@]}"; do
    read -r wname kind how _ <<< "$w"
    [[ $kind == sparse ]] && want "$wname" || continue
    if [[ $MODE == cached ]]; then
      (( $(residency "$SPARSE") >= SIZE_BYTES / 2 * 99 / 100 )) || cat "$SPARSE" > /dev/null
    else
      drop_cache "$SPARSE"; [[ -f $SPARE ]] && drop_cache "$SPARE"
    fi
    echo "cached_before.$wname=$(residency "$SPARSE")" >> "$W/meta$sfx.env"
    k0=$(ticks "$SERVER_PID"); t0=$EPOCHREALTIME
    if [[ $how == nbdcopy ]]; then
      nbdcopy "$URI" null: > "$W/$wname.log" 2>&1
    else
      qemu-img convert -n -f raw "$URI" --target-image-opts \
        "driver=null-co,size=$SIZE_BYTES" > "$W/$wname.log" 2>&1
    fi
    rc=$?
    t1=$EPOCHREALTIME; k1=$(ticks "$SERVER_PID")
    printf 'rc=%s\nt0=%s\nt1=%s\nticks0=%s\nticks1=%s\nbytes=%s\n' \
      "$rc" "$t0" "$t1" "$k0" "$k1" "$SIZE_BYTES" > "$W/$wname.copy"
    [[ $rc == 0 ]] || log "$name $wname: copy failed (rc $rc, $W/$wname.log)"
    echo "$wname copy cpu.samples$sfx" >> "$W/workloads.txt"
    if ! kill -0 "$SERVER_PID" 2>/dev/null; then
      log "$name: sparse server died during $wname"
      echo "server_died_in=$wname" >> "$W/meta.env"
      break
    fi
  done
  kill -0 "$SERVER_PID" 2>/dev/null && echo "server_alive_at_end_sparse=1" >> "$W/meta.env"
  cleanup
}

# run_server SERVER(remap|file) VARIANT PAIR
run_server() {
  local server=$1 v=$2 pair=$3 name w wname kind rw bs qd jobs rc t0 t1 k0 k1
  name=v$v-p$pair-$server
  local W=$OUT/raw/$name
  mkdir -p "$W"
  : > "$W/workloads.txt"
  : > "$W/meta.env"
  rm -f "$W/meta-sparse.env" "$W/cpu.samples" "$W/cpu.samples-sparse"
  wait_quiet

  if want_main; then
    drop_cache "$ORIGIN"
    if [[ $MODE == cached ]]; then
      warm_origin
    else
      cold
    fi
    start_server "$server" "$v" "$ORIGIN" "v$v" "$W" "$name" ""

    for w in "${WORKLOAD_TABLE[@]}"; do
      read -r wname kind rw bs qd jobs <<< "$w"
      want "$wname" && [[ $kind != sparse ]] || continue
      if [[ $MODE == cached ]]; then
        # keep the origin cached (as 4k pages) in every window
        (( $(residency "$ORIGIN") >= SIZE_BYTES * 99 / 100 )) || warm_origin
      else
        cold
      fi
      echo "cached_before.$wname=$(residency "$ORIGIN")" >> "$W/meta.env"
      if [[ $kind == copy ]]; then
        local src dst
        if [[ $rw == in ]]; then
          src=$SRC; dst=$URI
          (( $(residency "$SRC") >= SIZE_BYTES * 99 / 100 )) || cat "$SRC" > /dev/null
        else
          src=$URI; dst=null:
        fi
        k0=$(ticks "$SERVER_PID"); t0=$EPOCHREALTIME
        nbdcopy "$src" "$dst" > "$W/$wname.log" 2>&1
        rc=$?
        t1=$EPOCHREALTIME; k1=$(ticks "$SERVER_PID")
        printf 'rc=%s\nt0=%s\nt1=%s\nticks0=%s\nticks1=%s\nbytes=%s\n' \
          "$rc" "$t0" "$t1" "$k0" "$k1" "$SIZE_BYTES" > "$W/$wname.copy"
        [[ $rc == 0 ]] || log "$name $wname: nbdcopy failed (rc $rc, $W/$wname.log)"
      else
        local args=(--name="$wname" --ioengine=nbd --uri="$URI" --rw="$rw" --bs="$bs"
                    --iodepth="$qd" --numjobs="$jobs" --size="$SIZE_BYTES"
                    --time_based --runtime="$RUNTIME" --ramp_time="$RAMP"
                    --norandommap --randrepeat=1 --group_reporting
                    --lat_percentiles=1 --percentile_list=50:99
                    --output-format=json --output="$W/$wname.fio.json")
        [[ $rw == randrw ]] && args+=(--rwmixread=70)
        fio "${args[@]}" > "$W/$wname.fio.log" 2>&1
        rc=$?
        [[ $rc == 0 ]] || log "$name $wname: fio failed (rc $rc, $W/$wname.fio.log)"
      fi
      echo "$wname $kind" >> "$W/workloads.txt"
      # write-back of this workload's dirty pages outside every window
      sync "$ORIGIN"; [[ $server == remap ]] && sync "$SPARE"
      if [[ $wname == copy_in && $VERIFY == 1 ]]; then
        if nbdcopy "$URI" - 2>/dev/null | cmp -s - "$SRC"; then
          echo "verify_copy_in=ok" >> "$W/meta.env"
        else
          echo "verify_copy_in=FAILED" >> "$W/meta.env"
          log "$name: WARNING: export read back after copy_in differs from $SRC"
        fi
      fi
      if ! kill -0 "$SERVER_PID" 2>/dev/null; then
        log "$name: server died during $wname"
        echo "server_died_in=$wname" >> "$W/meta.env"
        break
      fi
    done
    kill -0 "$SERVER_PID" 2>/dev/null && echo "server_alive_at_end=1" >> "$W/meta.env"
    cleanup
  fi
  want_sparse && sparse_rows "$server" "$v" "$W" "$name"
  "$PY" "$LIB" run-report "$W" --out "$OUT/runs/$name.json" || log "$name: report failed"
}

# ------------------------------------------------------------------ main
nw=0
for w in "${WORKLOAD_TABLE[@]}"; do want "${w%% *}" && nw=$((nw + 1)); done
est=$(( PAIRS * 2 * ${#VARIANTS[@]} * (15 + nw * (RUNTIME + RAMP + 2)) ))
log "remap vs file: $PAIRS pair(s) x remapped {${REMAPPED}} %, $nw workload(s), ~$((est / 60)) min; out $OUT"
start=$SECONDS
for v in "${VARIANTS[@]}"; do
  [[ $v == 0 ]] && continue
  want_main && make_template "$v" "$ORIGIN" "v$v"
  want_sparse && make_template "$v" "$SPARSE" "sparse-v$v"
done
for ((i = 1; i <= PAIRS; i++)); do
  for v in "${VARIANTS[@]}"; do
    if (( i % 2 )); then
      run_server remap "$v" "$i"; run_server file "$v" "$i"
    else
      run_server file "$v" "$i"; run_server remap "$v" "$i"
    fi
  done
done
rm -f "$SPARE"
for t in "${TEMPLATE[@]}"; do rm -f "$t"; done
log "done in $((SECONDS - start)) s"
"$PY" "$LIB" summary "$OUT" ${MAX_OTHER:+--max-other "$MAX_OTHER"} || die "summary failed"
echo
echo "results: $OUT (summary.md, summary.json, runs/*.json, raw/)"
