#!/bin/bash
# remap: metadata benchmark (SPEC 2.3): cost of a remap commit with 0, 1,000
# and 100,000 remaps already in the table, open time, memory per remap.
#
#   scripts/bench-meta.sh [bench_meta options...]
#
# Builds the bench_meta target in build-bench/ (optimised, no sanitizer) and
# runs it; it prints two tables (commits, then opens and memory) and a line
# with the memory per remap.  Not a test: it never fails on a number.  The
# files it creates live in /var/tmp (a real disk, not tmpfs, so that every
# commit's fdatasync costs what it costs) and are removed afterwards; the
# run needs about 1.5 GiB of RAM and 1 GiB of sparse files there.
#
# Options are bench_meta's: -d DIR (default /var/tmp), -u UNIT (4096),
# -s SPARE_MIB (512), -o ORIGIN_MIB (1024), -n COMMITS (100),
# -r N,N,... (0,1000,100000), -k (keep the files).
#
# Targets (SPEC 2.3 and the issue): bytes per commit flat in the table size,
# open under 0.2 s with 100,000 remaps, at most 32 bytes of memory per remap.
# Environment: REMAP_JOBS (build parallelism, default 2), REMAP_BENCH_BUILD
# (build directory, default build-bench).

set -eu
cd "$(dirname "$0")/.."
root=$(pwd)
dir=${REMAP_BENCH_BUILD:-$root/build-bench}
jobs=${REMAP_JOBS:-2}

cmake -S "$root" -B "$dir" -DCMAKE_BUILD_TYPE=Release -DREMAP_SANITIZE= \
      -DREMAP_FUZZ=OFF -DBUILD_TESTING=OFF >/dev/null
cmake --build "$dir" -j"$jobs" --target bench_meta >/dev/null

echo "remap $(git -C "$root" describe --always --dirty 2>/dev/null || echo '?')" \
     "on $(uname -srm), $(nproc) CPUs," \
     "/var/tmp on $(df -PT /var/tmp 2>/dev/null | awk 'NR==2 {print $2}')"
exec "$dir/tests/bench/bench_meta" "$@"
