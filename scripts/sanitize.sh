#!/bin/bash
# remap: build with a sanitizer and run the unit and fault tests under it.
#
#   scripts/sanitize.sh [thread|address] [ctest arguments...]
#
#   thread   (default) ThreadSanitizer in build-tsan/
#   address  AddressSanitizer + UndefinedBehaviorSanitizer in build-asan/
#
# The unit, fault and fuzz (corpus replay) labels run; e2e does not: it
# loads the plugin into a real nbdkit, which lacks the sanitizer runtime.
# Environment: REMAP_JOBS (build parallelism, default 2).

set -eu
cd "$(dirname "$0")/.."
root=$(pwd)

kind=${1:-thread}
[ $# -gt 0 ] && shift
jobs=${REMAP_JOBS:-2}

case "$kind" in
  thread)
    dir=$root/build-tsan
    export TSAN_OPTIONS=${TSAN_OPTIONS:-halt_on_error=1:second_deadlock_stack=1}
    ;;
  address)
    dir=$root/build-asan
    export ASAN_OPTIONS=${ASAN_OPTIONS:-detect_leaks=1}
    export UBSAN_OPTIONS=${UBSAN_OPTIONS:-halt_on_error=1:print_stacktrace=1}
    ;;
  *)
    echo "usage: $0 [thread|address] [ctest arguments...]" >&2
    exit 2
    ;;
esac

cmake -S "$root" -B "$dir" \
      -DCMAKE_BUILD_TYPE=Debug -DCMAKE_C_FLAGS_DEBUG="-O1 -g" \
      -DREMAP_WERROR=ON -DREMAP_SANITIZE="$kind" -DBUILD_TESTING=ON
cmake --build "$dir" -j"$jobs"

# Sanitizer runtimes of this GCC can fail on kernels with many random mmap
# bits ("unexpected memory mapping"); disabling ASLR for the run avoids it.
run=()
if [ "$(uname -s)" = Linux ] && command -v setarch >/dev/null 2>&1 &&
   setarch "$(uname -m)" -R true 2>/dev/null; then
  run=(setarch "$(uname -m)" -R)
fi

exec "${run[@]}" ctest --test-dir "$dir" --output-on-failure \
     -L 'unit|fault|fuzz' "$@"
