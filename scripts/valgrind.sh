#!/bin/bash
# remap: run the unit tests under valgrind (memcheck), in build/.
#
#   scripts/valgrind.sh [BUILD_DIR]
#
# Every tests/unit test binary runs in-process (CK_FORK=no) under memcheck;
# any error, or a definite leak, fails it.  The fault tests are left to
# ASan (scripts/sanitize.sh): their crash enumeration takes too long under
# valgrind to run on every change.  Exit 0 if all are clean, 1 otherwise,
# 77 if valgrind is missing.

set -u
cd "$(dirname "$0")/.."
build=${1:-build}
command -v valgrind >/dev/null || { echo "valgrind.sh: valgrind not installed" >&2; exit 77; }
[ -d "$build/tests/unit" ] || { echo "valgrind.sh: build $build first" >&2; exit 1; }

status=0
for t in "$build"/tests/unit/test_*; do
  [ -x "$t" ] || continue
  log=$build/valgrind-$(basename "$t").log
  if CK_FORK=no REMAP_BUILD_DIR=$build REMAP_SOURCE_DIR=$PWD \
       valgrind -q --error-exitcode=99 --leak-check=full \
       --errors-for-leak-kinds=definite "$t" >"$log" 2>&1; then
    echo "  clean   $(basename "$t")"
  else
    echo "  ERRORS  $(basename "$t") (see $log)"
    tail -n 30 "$log"
    status=1
  fi
done
exit $status
