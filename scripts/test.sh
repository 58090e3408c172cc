#!/bin/bash
# remap: the one test command.
#
#   scripts/test.sh [--no-install] [--quick] [--tsan]
#
# 1. Installs the build and test dependencies on Debian/Ubuntu when some are
#    missing (as root; otherwise it prints what is missing and carries on).
# 2. Builds build/ (-O2 -g, -Werror) and runs every ctest label: unit, fault,
#    e2e (and fuzz replays, when there is a corpus).
# 3. Builds build-asan/ (ASan + UBSan) and runs the unit, fault and fuzz
#    labels (scripts/sanitize.sh address).
# 4. Runs the unit tests of build/ under valgrind (scripts/valgrind.sh).
# 5. Builds build-tsan/ (ThreadSanitizer) and runs the unit and fault labels:
#    the engine is threaded (per-unit locks, concurrent remaps).
#
#   --no-install  never call apt-get
#   --quick       skip the sanitizer and valgrind steps
#   --tsan        (kept for compatibility: TSan runs unless --quick)
#
# Environment: REMAP_JOBS (build parallelism, default 2), REMAP_EXTRA_PACKAGES
# (more Debian packages to install).  Exits non-zero if any step failed;
# every step runs even after an earlier one failed, and a summary is printed.

set -u
cd "$(dirname "$0")/.."
root=$(pwd)

install=yes
quick=no
tsan=no
for arg in "$@"; do
  case "$arg" in
    --no-install) install=no ;;
    --quick) quick=yes ;;
    --tsan) tsan=yes ;;
    -h|--help) sed -n '2,20p' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;;
    *) echo "$0: unknown option: $arg (try --help)" >&2; exit 2 ;;
  esac
done

jobs=${REMAP_JOBS:-2}

packages="build-essential cmake pkg-config nbdkit nbdkit-plugin-dev
  libnbd-dev libnbd-bin liburing-dev libjson-c-dev check libsubunit-dev
  qemu-utils fio e2fsprogs util-linux mount jq python3 valgrind perl
  ${REMAP_EXTRA_PACKAGES:-}"

# ---- dependencies ---------------------------------------------------------

missing_packages () {
  local p
  for p in $packages; do
    if ! dpkg-query -W -f='${Status}\n' "$p" 2>/dev/null |
        grep -q '^install ok installed$'; then
      echo "$p"
    fi
  done
}

install_deps () {
  local missing
  if ! command -v dpkg-query >/dev/null 2>&1; then
    echo "test.sh: not a Debian system; install the equivalents of:" \
         $packages >&2
    return 0
  fi
  missing=$(missing_packages | tr '\n' ' ')
  if [ -z "${missing// /}" ]; then
    return 0
  fi
  if [ "$install" = no ]; then
    echo "test.sh: missing packages (not installing: --no-install): $missing" >&2
    return 0
  fi
  if [ "$(id -u)" != 0 ]; then
    echo "test.sh: missing packages: $missing" >&2
    echo "test.sh: as root run: apt-get install -y --no-install-recommends" \
         "$missing" >&2
    return 0
  fi
  echo "test.sh: installing: $missing"
  export DEBIAN_FRONTEND=noninteractive
  apt-get update &&
    apt-get install -y --no-install-recommends $missing
}

# promtool checks `remapctl status --prometheus' (tests/e2e/test-prometheus.sh).
# Debian ships it only inside the prometheus package, whose installation
# would also start a Prometheus server on port 9090; so only the promtool
# binary is taken out of the package (apt-get download, dpkg-deb) and put in
# /usr/local/bin.  Without it the test still runs its own strict checker.
install_promtool () {
  local tmp
  command -v promtool >/dev/null 2>&1 && return 0
  if [ "$install" = no ] || [ "$(id -u)" != 0 ] ||
     ! command -v dpkg-deb >/dev/null 2>&1; then
    echo "test.sh: promtool missing (the Prometheus check runs without it)" >&2
    return 0
  fi
  tmp=$(mktemp -d) || return 0
  if (cd "$tmp" && { apt-get download prometheus >/dev/null 2>&1 ||
                     { apt-get update >/dev/null &&
                       apt-get download prometheus >/dev/null; }; } &&
      dpkg-deb --fsys-tarfile prometheus_*.deb |
        tar -x -C "$tmp" ./usr/bin/promtool) &&
     install -m 0755 "$tmp/usr/bin/promtool" /usr/local/bin/promtool; then
    echo "test.sh: installed promtool from Debian's prometheus package"
  else
    echo "test.sh: could not get promtool (the check runs without it)" >&2
  fi
  rm -rf "$tmp"
  return 0
}

# ---- steps ------------------------------------------------------------------

failed=()
passed=()

step () {
  local name=$1
  shift
  echo
  echo "==== $name"
  if "$@"; then
    passed+=("$name")
    return 0
  fi
  echo "==== $name: FAILED" >&2
  failed+=("$name")
  return 1
}

configure_main () {
  cmake -S "$root" -B "$root/build" \
        -DCMAKE_BUILD_TYPE=RelWithDebInfo \
        -DCMAKE_C_FLAGS_RELWITHDEBINFO="-O2 -g" \
        -DREMAP_WERROR=ON -DREMAP_SANITIZE= -DBUILD_TESTING=ON
}

build_main () {
  cmake --build "$root/build" -j"$jobs"
}

test_main () {
  ctest --test-dir "$root/build" --output-on-failure
}

step "install dependencies" install_deps
step "install promtool" install_promtool
if step "configure build/" configure_main && step "build build/" build_main
then
  step "ctest build/ (all labels)" test_main
fi

if [ "$quick" = no ]; then
  # The stress test of the table (tests/fault/test_stress.c) runs a minute
  # under each sanitizer; the plain build gives it its default 5 s.
  export REMAP_STRESS_SECONDS=${REMAP_STRESS_SECONDS:-60}
  step "ASan+UBSan build-asan/ (unit, fault, fuzz)" \
       "$root/scripts/sanitize.sh" address
  step "valgrind build/ (unit)" "$root/scripts/valgrind.sh" "$root/build"
  # The crash enumerations, the model check and the long single-threaded
  # sweeps (discovery, recovery, format, codec, layout, golden, v2) already
  # run under ASan; TSan would only make them slow (test_discovery alone
  # passed 10 minutes under TSan here).  What TSan is for, the threaded
  # tests (stress, doubt, error classes, retest, reconnect, fast path, read
  # retries, io_uring), stays.
  step "TSan build-tsan/ (unit, fault, fuzz; threaded tests)" \
       "$root/scripts/sanitize.sh" thread \
       -E 'fault/test_(crash|model|discovery|format_safety|v2|adversary2)|unit/test_(recovery|meta|golden|layout)'
fi

echo
echo "==== summary"
for s in "${passed[@]}"; do echo "  ok      $s"; done
for s in "${failed[@]+"${failed[@]}"}"; do echo "  FAILED  $s"; done
if [ ${#failed[@]} -gt 0 ]; then
  exit 1
fi
echo "all steps passed"
