#!/bin/bash
# remap: mutation testing of core/ (run by hand, not in CI).
#
#   scripts/mutate.sh [--keep] [PATTERN...]     run the campaign
#   scripts/mutate.sh --save NAME "WHAT IT BREAKS"
#   scripts/mutate.sh --list
#
# A mutant is a small patch to core/ that breaks one behaviour on purpose;
# the tests should notice.  Each lives in scripts/mutants/NAME.patch, whose
# first line is "# breaks: <the behaviour>", then a unified diff (-p1).
#
# run   copies the tracked tree (as it is in the work tree) to a scratch
#       directory, builds it once, checks that the unit and fault tests pass,
#       then for every mutant (or those whose name matches a PATTERN):
#       applies it, rebuilds, runs `ctest -L "unit|fault" --stop-on-failure`
#       and reverts it.  A mutant is killed when a test fails (or times out),
#       survives when every test passes, and is stale when it no longer
#       applies or no longer compiles (fix or drop it: it tests nothing).
#       Prints the score and the survivors; exit 0 when every mutant was
#       killed, 1 otherwise.  Survivors that cannot be killed (equivalent
#       mutants) are explained in docs/MUTATION.md.
# --save  turns the current `git diff -- core/` into a new mutant and
#       restores core/ (edit a line of core/, then save it).
# --list  prints every mutant and what it breaks.
#
# Environment: REMAP_JOBS (build parallelism, default 2),
# REMAP_MUTATE_TIMEOUT (seconds per test, default 300),
# REMAP_STRESS_SECONDS (default 3 here: the stress test is one test among
# many in this run), REMAP_MUTATE_SANITIZE (thread or address: build the
# copy with that sanitizer, as scripts/sanitize.sh does; slower, but it
# kills mutants that only a data race or a use-after-free shows, see
# docs/MUTATION.md).

set -u
cd "$(dirname "$0")/.."
root=$(pwd)
mdir=$root/scripts/mutants
jobs=${REMAP_JOBS:-2}
timeout=${REMAP_MUTATE_TIMEOUT:-300}
export REMAP_STRESS_SECONDS=${REMAP_STRESS_SECONDS:-3}
sanitize=${REMAP_MUTATE_SANITIZE:-}
run=()
case "$sanitize" in
  "") ;;
  thread|address)
    export TSAN_OPTIONS=${TSAN_OPTIONS:-halt_on_error=1:second_deadlock_stack=1}
    export ASAN_OPTIONS=${ASAN_OPTIONS:-detect_leaks=1}
    export UBSAN_OPTIONS=${UBSAN_OPTIONS:-halt_on_error=1:print_stacktrace=1}
    # As scripts/sanitize.sh: no ASLR, which some sanitizer runtimes need.
    if [ "$(uname -s)" = Linux ] && command -v setarch >/dev/null 2>&1 &&
       setarch "$(uname -m)" -R true 2>/dev/null; then
      run=(setarch "$(uname -m)" -R)
    fi
    ;;
  *)
    echo "mutate.sh: REMAP_MUTATE_SANITIZE must be thread or address" >&2
    exit 2
    ;;
esac

case "${1:-}" in
  --save)
    name=${2:?usage: $0 --save NAME \"WHAT IT BREAKS\"}
    what=${3:?usage: $0 --save NAME \"WHAT IT BREAKS\"}
    mkdir -p "$mdir"
    if [ -e "$mdir/$name.patch" ]; then
      echo "mutate.sh: $mdir/$name.patch exists" >&2
      exit 2
    fi
    if git diff --quiet -- core/; then
      echo "mutate.sh: core/ has no change to save" >&2
      exit 2
    fi
    { echo "# breaks: $what"; git diff -- core/; } >"$mdir/$name.patch"
    git checkout -- core/
    echo "saved $mdir/$name.patch"
    exit 0
    ;;
  --list)
    for p in "$mdir"/*.patch; do
      printf '%-36s %s\n' "$(basename "$p" .patch)" \
        "$(sed -n '1s/^# breaks: //p' "$p")"
    done
    exit 0
    ;;
  -h|--help)
    sed -n '2,32p' "$0" | sed 's/^# \{0,1\}//'
    exit 0
    ;;
esac

keep=no
if [ "${1:-}" = --keep ]; then
  keep=yes
  shift
fi

patches=()
for p in "$mdir"/*.patch; do
  n=$(basename "$p" .patch)
  if [ $# -eq 0 ]; then
    patches+=("$p")
  else
    for pat in "$@"; do
      case "$n" in *$pat*) patches+=("$p"); break ;; esac
    done
  fi
done
if [ ${#patches[@]} -eq 0 ]; then
  echo "mutate.sh: no mutants to run" >&2
  exit 2
fi

scratch=$(mktemp -d /tmp/remap-mutate.XXXXXX)
if [ "$keep" = no ]; then
  trap 'rm -rf "$scratch"' EXIT
fi
tree=$scratch/tree
mkdir -p "$tree"
git ls-files -z | (cd "$root" && xargs -0 cp --parents -t "$tree")
log=$scratch/log

echo "mutate.sh: building a copy of the tree in $tree"
if ! cmake -S "$tree" -B "$tree/build" -DCMAKE_BUILD_TYPE=RelWithDebInfo \
       -DCMAKE_C_FLAGS_RELWITHDEBINFO="-O1 -g" -DREMAP_WERROR=ON \
       -DREMAP_SANITIZE="$sanitize" -DBUILD_TESTING=ON >"$log" 2>&1 ||
   ! cmake --build "$tree/build" -j"$jobs" >>"$log" 2>&1; then
  echo "mutate.sh: the unmutated tree does not build; see $log" >&2
  keep=yes
  exit 2
fi

run_tests () {
  "${run[@]}" ctest --test-dir "$tree/build" -L 'unit|fault' --stop-on-failure \
        --timeout "$timeout" >"$log" 2>&1
}

if ! run_tests; then
  echo "mutate.sh: the unmutated tree fails its tests; see $log" >&2
  keep=yes
  exit 2
fi

killed=0
survived=()
stale=()
for p in "${patches[@]}"; do
  n=$(basename "$p" .patch)
  what=$(sed -n '1s/^# breaks: //p' "$p")
  if ! patch -s -p1 -d "$tree" --dry-run <"$p" >/dev/null 2>&1; then
    stale+=("$n (does not apply)")
    printf 'STALE     %s\n' "$n"
    continue
  fi
  patch -s -p1 -d "$tree" <"$p"
  if ! cmake --build "$tree/build" -j"$jobs" >"$log" 2>&1; then
    stale+=("$n (does not compile)")
    printf 'STALE     %s\n' "$n"
  elif run_tests; then
    survived+=("$n: $what")
    printf 'SURVIVED  %s: %s\n' "$n" "$what"
  else
    killed=$((killed + 1))
    by=$(sed -n 's/^.*[0-9]* - \([^ ]*\) (.*$/\1/p' "$log" | head -1)
    printf 'killed    %-36s by %s\n' "$n" "${by:-?}"
  fi
  patch -s -R -p1 -d "$tree" <"$p"
done
# Leave the copy unmutated and built, for a rerun with --keep.
cmake --build "$tree/build" -j"$jobs" >"$log" 2>&1

valid=$((killed + ${#survived[@]}))
echo
echo "==== mutation score: $killed of $valid killed" \
     "($(( valid ? 100 * killed / valid : 0 )) %), ${#stale[@]} stale"
for s in "${survived[@]+"${survived[@]}"}"; do echo "  survived: $s"; done
for s in "${stale[@]+"${stale[@]}"}"; do echo "  stale:    $s"; done
[ ${#survived[@]} -eq 0 ] && [ ${#stale[@]} -eq 0 ]
