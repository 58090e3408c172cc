#!/bin/bash
# remap: how many origin calls one large TRIM and one large WRITE_ZEROES
# cost, and how long they take, behind an NBD origin (nbdkit memory, its
# calls counted by nbdkit's stats filter) and a file origin (fallocate
# calls counted by strace, in a run of its own; the timed run is not
# traced).  Not a ctest: a measurement for docs/BENCHMARKS.md.
#
#   tests/bench/trim-calls.sh [PLUGIN] [SIZE_MIB]
#
# PLUGIN defaults to build/remap.so, SIZE_MIB to 256.  Each case runs with
# no unit remapped and with every 1000th unit of the range remapped.
set -eu
here=$(cd "$(dirname "$0")/../.." && pwd)
plugin=$(readlink -f "${1:-$here/build/remap.so}")
mib=${2:-256}
for t in nbdkit qemu-io strace; do
    command -v $t >/dev/null ||
        { echo "trim-calls: $t is missing" >&2; exit 77; }
done
W=$(mktemp -d /var/tmp/trim-calls.XXXXXX)
pids=()
cleanup() {
    for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
    wait 2>/dev/null || true
    rm -rf "$W"
}
trap cleanup EXIT

# serve NAME ARGS...: nbdkit on $W/NAME.sock in the background.
serve() {
    local name=$1; shift
    rm -f "$W/$name.sock" "$W/$name.pid"
    "$@" >"$W/$name.log" 2>&1 &
    pids+=($!)
    for _ in $(seq 300); do
        [ -S "$W/$name.sock" ] && [ -s "$W/$name.pid" ] && return 0
        sleep 0.1
    done
    echo "trim-calls: $name did not start: $(tail -n 3 "$W/$name.log")" >&2
    exit 1
}

stop() {
    local pid
    pid=$(cat "$W/$1.pid")
    kill "$pid"
    while kill -0 "$pid" 2>/dev/null; do sleep 0.05; done
}

remaps=""
for u in $(seq 1000 1000 $((mib * 256 - 1))); do remaps+="$u,"; done
remaps=${remaps%,}

# one ORIGIN-KIND REMAPS OP: print one line of results.
one() {
    local kind=$1 rm=$2 op=$3 origin trace=() calls reqs t0 t1 pass
    for pass in count time; do
        truncate -s 0 "$W/spare.img"
        truncate -s 64M "$W/spare.img"
        if [ "$kind" = nbd ]; then
            rm -f "$W/ostats"
            serve o nbdkit -f -P "$W/o.pid" -U "$W/o.sock" --filter=stats \
                memory $((mib + 16))M statsfile="$W/ostats"
            origin="nbd+unix:///?socket=$W/o.sock"
        else
            truncate -s 0 "$W/origin.img"
            truncate -s $((mib + 16))M "$W/origin.img"
            origin=$W/origin.img
            [ $pass = count ] &&
                trace=(strace -f -qq -y -e trace=fallocate -o "$W/strace")
        fi
        local args=(origin="$origin" spare="$W/spare.img" format=yes)
        [ "$rm" = some ] && args+=(remap="$remaps")
        rm -f "$W/rstats"
        serve r "${trace[@]}" nbdkit -f -P "$W/r.pid" -U "$W/r.sock" \
            --filter=stats "$plugin" "${args[@]}" statsfile="$W/rstats"
        local cmd="discard 0 ${mib}M"
        [ "$op" = zero ] && cmd="write -z 0 ${mib}M"
        t0=$(date +%s.%N)
        qemu-io -f raw "nbd+unix:///?socket=$W/r.sock" -c "$cmd" >/dev/null
        t1=$(date +%s.%N)
        stop r
        [ "$kind" = nbd ] && stop o
        if [ $pass = count ]; then
            local k=trim; [ "$op" = zero ] && k=zero
            reqs=$(sed -n "s/^$k: \([0-9]*\) ops.*/\1/p" "$W/rstats")
            if [ "$kind" = nbd ]; then
                calls=$(sed -n "s/^$k: \([0-9]*\) ops.*/\1/p" "$W/ostats")
            else
                calls=$(grep -c 'fallocate([0-9]*<[^>]*origin.img>' \
                    "$W/strace" || true)
            fi
        else
            printf "%-5s %-5s %-13s %3s requests %8s origin calls %8.3f s\n" \
                "$op" "$kind" "remapped=$rm" "${reqs:-?}" "${calls:-?}" \
                "$(echo "$t1 - $t0" | bc)"
        fi
    done
}

echo "# $plugin, ${mib} MiB, $(nproc) cores," \
     "load $(cut -d' ' -f1-3 /proc/loadavg)"
for op in trim zero; do
    for kind in nbd file; do
        for rm in none some; do one $kind $rm $op; done
    done
done
