# shellcheck shell=bash
# tests/vm/lib/host.sh - the host half of the VM tests (issue 11).
#
# Sourced by tests/vm/test-vm-*.sh when they run on the host.  It boots
# Debian's kernel under qemu with a small busybox initramfs; the guest sees
# the host's / read-only (9p) under a tmpfs overlay, so the guest runs the
# very binaries of the host at the very same paths (build/remap.so,
# build/remapctl, nbdkit, nbd-client, e2fsprogs), and a job directory is
# shared read-write for results and logs.  Inside the guest the scenario
# script runs again, as  bash SCRIPT --guest JOB , with tests/vm/lib/guest.sh.
#
#   . "$(dirname "$0")/lib/host.sh"
#   vm_init test-vm-name          # prerequisites (exit 77 naming what is
#                                 # missing), work dir, traps
#   ...generate data into $JOB...
#   vm_run                        # boot, run this script in the guest, check
#
# Exit codes: 0 pass, 1 fail, 77 skip.  Only qemu (started here, by PID) is
# ever killed; the work directory is removed at exit unless VM_KEEP=1.
#
# Environment knobs:
#   VM_TIMEOUT=900   watchdog of the whole boot, seconds (ctest's TIMEOUT is
#                    above it); the guest script gets 40 s less
#   VM_MEM=1024      guest RAM, MiB          VM_CPUS=2
#   VM_KERNEL=       kernel image (default: the newest /boot/vmlinuz-* whose
#                    modules are in /lib/modules)
#   VM_ACCEL=auto    auto|tcg|kvm (auto: kvm only with kvm_intel/kvm_amd)
#   VM_KEEP=0        1: keep the work directory (console, guest and nbdkit
#                    logs)
#   VM_MODES="single multi"  the nbd-client modes to run: single = -b 4096,
#                    multi = -b 4096 -C 2
#   VM_MKFS_OPTS=    more mkfs.ext4 options (e.g. "-E nodiscard" to leave
#                    out mkfs's whole-device trim while debugging)

set -u
LC_ALL=C
export LC_ALL

VM_NAME=vm
VM_T0=$(date +%s%N)
VM_WORK=
VM_QEMU_PID=
VM_RESULT=1
JOB=

log() {
    local ms=$((($(date +%s%N) - VM_T0) / 1000000))
    printf '[%s %4d.%03ds] %s\n' "$VM_NAME" $((ms / 1000)) $((ms % 1000)) "$*"
}
skip() { log "SKIP: $*"; VM_RESULT=77; exit 77; }
fail() { log "FAIL: $*"; VM_RESULT=1; exit 1; }

vm_cleanup() {
    local rc=$VM_RESULT f
    set +e
    trap - EXIT INT TERM
    if [ -n "$VM_QEMU_PID" ] && kill -0 "$VM_QEMU_PID" 2>/dev/null; then
        kill "$VM_QEMU_PID"
        for _ in $(seq 20); do kill -0 "$VM_QEMU_PID" 2>/dev/null || break; sleep 0.25; done
        kill -9 "$VM_QEMU_PID" 2>/dev/null
        wait "$VM_QEMU_PID" 2>/dev/null
    fi
    if [ "$rc" = 1 ] && [ -n "$VM_WORK" ]; then
        for f in "$VM_WORK/console.log" "$VM_WORK/qemu.log" "$JOB"/*.log; do
            [ -s "$f" ] || continue
            echo "---- $f (last 40 lines)"
            tail -n 40 "$f"
        done
    fi
    if [ -n "$VM_WORK" ]; then
        if [ "${VM_KEEP:-0}" = 1 ]; then log "work directory kept: $VM_WORK"
        else rm -rf "$VM_WORK"; fi
    fi
    case "$rc" in
        0) log PASS ;;
        77) ;;
        *) log FAIL ;;
    esac
    exit "$rc"
}

# The kernel and its modules.  Sets VM_KERNEL and VM_KVER, or skips.
vm_find_kernel() {
    local k v
    if [ -n "${VM_KERNEL:-}" ]; then
        [ -r "$VM_KERNEL" ] || skip "VM_KERNEL=$VM_KERNEL is not readable"
        VM_KVER=${VM_KVER:-${VM_KERNEL##*/vmlinuz-}}
    else
        VM_KERNEL=
        for k in $(ls -1 /boot/vmlinuz-* 2>/dev/null | sort -rV); do
            v=${k##*/vmlinuz-}
            if [ -r "$k" ] && [ -f "/lib/modules/$v/modules.dep" ]; then
                VM_KERNEL=$k
                VM_KVER=$v
                break
            fi
        done
        [ -n "$VM_KERNEL" ] ||
            skip "no readable /boot/vmlinuz-VERSION with /lib/modules/VERSION/modules.dep (apt-get install linux-image-amd64)"
    fi
    [ -f "/lib/modules/$VM_KVER/modules.dep" ] ||
        skip "/lib/modules/$VM_KVER/modules.dep is missing (install the modules of $VM_KERNEL, or run depmod $VM_KVER)"
}

# vm_init NAME [EXTRA-GUEST-COMMANDS...]
vm_init() {
    VM_NAME=$1
    shift
    local here c
    here=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
    VM_SCRIPT=$(cd "$(dirname "$0")" && pwd)/$(basename "$0")
    REMAP_SOURCE_DIR=${REMAP_SOURCE_DIR:-$(cd "$here/../.." && pwd)}
    REMAP_BUILD_DIR=${REMAP_BUILD_DIR:-$REMAP_SOURCE_DIR/build}
    REMAP_BUILD_DIR=$(cd "$REMAP_BUILD_DIR" 2>/dev/null && pwd) ||
        fail "build directory ${REMAP_BUILD_DIR} not found: build first (cmake -S . -B build && cmake --build build)"
    [ -f "$REMAP_BUILD_DIR/remap.so" ] ||
        fail "$REMAP_BUILD_DIR/remap.so not found: build first (cmake --build build)"
    [ -x "$REMAP_BUILD_DIR/remapctl" ] ||
        fail "$REMAP_BUILD_DIR/remapctl not found: build first (cmake --build build)"

    [ "$(id -u)" = 0 ] || skip "must run as root (the guest needs the host's whole / over 9p)"
    command -v qemu-system-x86_64 >/dev/null 2>&1 ||
        skip "qemu-system-x86_64 not found (apt-get install qemu-system-x86)"
    for c in modprobe gzip timeout; do
        command -v "$c" >/dev/null 2>&1 || skip "command not found: $c (apt-get install kmod gzip coreutils)"
    done
    VM_BUSYBOX=
    for c in /bin/busybox /usr/bin/busybox; do
        if [ -x "$c" ] && ! ldd "$c" >/dev/null 2>&1; then VM_BUSYBOX=$c; break; fi
    done
    [ -n "$VM_BUSYBOX" ] || skip "no static busybox (apt-get install busybox-static)"
    for c in nbdkit nbd-client mkfs.ext4 e2fsck debugfs sha256sum ip cmp "$@"; do
        command -v "$c" >/dev/null 2>&1 || skip "command not found (the guest runs the host's): $c"
    done
    vm_find_kernel
    case "$VM_SCRIPT$REMAP_BUILD_DIR" in
        *[[:space:]]*) skip "paths with white space cannot go on the kernel command line: $VM_SCRIPT $REMAP_BUILD_DIR" ;;
    esac

    VM_WORK=$(mktemp -d "/tmp/remap-$VM_NAME.XXXXXX") || { echo "mktemp failed" >&2; exit 1; }
    JOB=$VM_WORK/job
    mkdir -p "$JOB" || fail "mkdir $JOB"
    trap vm_cleanup EXIT
    trap 'log "interrupted"; exit 1' INT TERM
    {
        printf 'REMAP_BUILD_DIR=%q\n' "$REMAP_BUILD_DIR"
        printf 'REMAP_SOURCE_DIR=%q\n' "$REMAP_SOURCE_DIR"
        printf 'VM_MODES=%q\n' "${VM_MODES:-single multi}"
        printf 'VM_MKFS_OPTS=%q\n' "${VM_MKFS_OPTS:-}"
    } >"$JOB/env"
}

# The initramfs: static busybox, the modules (with their dependencies,
# resolved by modprobe for the guest's kernel) and /init.
vm_initramfs() {
    local root=$VM_WORK/initrd m path args dest
    mkdir -p "$root/bin" || fail "mkdir initrd"
    cp "$VM_BUSYBOX" "$root/bin/busybox" || fail "copy busybox"
    for m in virtio_pci 9pnet_virtio 9p overlay crc32c_generic ext4 nbd loop dm_mod dm_flakey; do
        modprobe -S "$VM_KVER" --show-depends "$m" ||
            skip "kernel $VM_KVER has no module $m (modprobe -S $VM_KVER --show-depends $m failed)"
    done | awk '$1 == "insmod" && !seen[$2]++ { $1 = ""; sub(/^ /, ""); print }' >"$VM_WORK/modules" ||
        fail "module resolution"
    : >"$root/modules.list"
    while read -r path args; do
        dest=$path
        mkdir -p "$root${dest%/*}" && cp "$path" "$root$dest" || fail "copy $path"
        echo "$dest $args" >>"$root/modules.list"
    done <"$VM_WORK/modules"

    cat >"$root/init" <<'EOF'
#!/bin/busybox sh
/bin/busybox mkdir -p /sbin /usr/bin /usr/sbin /proc /sys /dev /lower /upper /newroot
/bin/busybox --install -s
export PATH=/bin:/sbin:/usr/bin:/usr/sbin
mount -t proc proc /proc
mount -t sysfs sysfs /sys
mount -t devtmpfs devtmpfs /dev
while read -r p args; do
    # shellcheck disable=SC2086
    insmod "$p" $args || echo "VM: insmod $p failed"
done </modules.list
for a in $(cat /proc/cmdline); do
    case "$a" in
        vm.job=*) JOB=${a#vm.job=} ;;
        vm.script=*) SCRIPT=${a#vm.script=} ;;
        vm.timeout=*) GT=${a#vm.timeout=} ;;
    esac
done
mount -t 9p -o trans=virtio,version=9p2000.L,ro,cache=loose,msize=524288 hostroot /lower ||
    echo "VM: mount of the host root failed"
mount -t tmpfs -o mode=755 tmpfs /upper
mkdir -p /upper/u /upper/w
mount -t overlay -o lowerdir=/lower,upperdir=/upper/u,workdir=/upper/w overlay /newroot ||
    echo "VM: overlay mount failed"
mount -t proc proc /newroot/proc
mount -t sysfs sysfs /newroot/sys
mount -t devtmpfs devtmpfs /newroot/dev
mkdir -p /newroot/dev/shm /newroot/dev/pts /newroot/dev/mapper
ln -sf /proc/self/fd /newroot/dev/fd
ln -sf /proc/self/fd/0 /newroot/dev/stdin
ln -sf /proc/self/fd/1 /newroot/dev/stdout
ln -sf /proc/self/fd/2 /newroot/dev/stderr
mount -t tmpfs tmpfs /newroot/dev/shm
mount -t devpts devpts /newroot/dev/pts
mount -t tmpfs tmpfs /newroot/run
mkdir -p "/newroot$JOB"
mount -t 9p -o trans=virtio,version=9p2000.L,msize=524288 vmjob "/newroot$JOB" ||
    echo "VM: mount of the job directory failed"
echo "VM: guest up after $(cut -d' ' -f1 /proc/uptime) s, running $SCRIPT"
timeout -s KILL "${GT:-300}" chroot /newroot /bin/bash "$SCRIPT" --guest "$JOB" \
    >"/newroot$JOB/guest.log" 2>&1
rc=$?
echo "VM-GUEST-EXIT rc=$rc"
echo "VM: the guest script ended at $(cut -d' ' -f1 /proc/uptime) s"
sync
umount "/newroot$JOB"
poweroff -f
EOF
    chmod 755 "$root/init"
    (cd "$root" && find . | "$VM_BUSYBOX" cpio -o -H newc 2>/dev/null | gzip -1) \
        >"$VM_WORK/initramfs.img" || fail "building the initramfs"
}

# vm_run: boot, let the guest run this script, print its log, check the
# result.  The guest writes "VM-RESULT: PASS ..." to $JOB/result.
vm_run() {
    local timeout=${VM_TIMEOUT:-900} accel=${VM_ACCEL:-auto} gt qrc t0
    local -a accel_args
    case "$accel" in
        auto)
            if [ -w /dev/kvm ] && { [ -d /sys/module/kvm_intel ] || [ -d /sys/module/kvm_amd ]; }; then
                accel=kvm
            else
                accel=tcg
            fi ;;
        tcg|kvm) ;;
        *) fail "VM_ACCEL must be auto, tcg or kvm, not '$accel'" ;;
    esac
    accel_args=(-accel kvm -cpu host)
    # shellcheck disable=SC2054  # tcg,thread=multi is one argument
    [ "$accel" = kvm ] || accel_args=(-accel tcg,thread=multi -cpu max)
    vm_initramfs
    gt=$((timeout > 120 ? timeout - 40 : timeout * 2 / 3))
    log "booting $VM_KERNEL ($accel, ${VM_CPUS:-2} vCPU, ${VM_MEM:-1024} MiB; watchdog ${timeout} s, guest ${gt} s)"
    t0=$(date +%s)
    timeout -k 10 "$timeout" qemu-system-x86_64 \
        "${accel_args[@]}" -smp "${VM_CPUS:-2}" -m "${VM_MEM:-1024}" \
        -nodefaults -no-user-config -display none -monitor none -no-reboot \
        -serial "file:$VM_WORK/console.log" \
        -kernel "$VM_KERNEL" -initrd "$VM_WORK/initramfs.img" \
        -append "console=ttyS0 panic=-1 loglevel=4 vm.job=$JOB vm.script=$VM_SCRIPT vm.timeout=$gt" \
        -virtfs local,path=/,mount_tag=hostroot,security_model=none,readonly=on,multidevs=remap \
        -virtfs "local,path=$JOB,mount_tag=vmjob,security_model=none" \
        >"$VM_WORK/qemu.log" 2>&1 &
    VM_QEMU_PID=$!
    wait "$VM_QEMU_PID"
    qrc=$?
    VM_QEMU_PID=
    log "qemu exited with status $qrc after $(($(date +%s) - t0)) s ($(grep -a -o 'guest up after [0-9.]* s\|script ended at [0-9.]* s' "$VM_WORK/console.log" | tr '\n' ' '))"
    [ -f "$JOB/guest.log" ] && sed 's/^/    /' "$JOB/guest.log"
    [ "$qrc" = 0 ] || fail "qemu failed or the watchdog fired (status $qrc; 124 = VM_TIMEOUT=${timeout} s)"
    grep -q 'VM-GUEST-EXIT rc=0' "$VM_WORK/console.log" ||
        fail "the guest script did not exit 0 ($(grep -a 'VM-GUEST-EXIT\|VM:' "$VM_WORK/console.log" | tr '\n' ' '))"
    grep -q '^VM-RESULT: PASS' "$JOB/result" 2>/dev/null || fail "no PASS result from the guest"
    log "guest result: $(cat "$JOB/result")"
    VM_RESULT=0
}

# vm_data DIR MIB: random files generated on the host (TCG is slow at
# /dev/urandom and sha256): one big file of about half of MIB, a few
# middle-sized ones, 60 small ones, and DIR.sha256 with their checksums.
vm_data() {
    local dir=$1 mib=$2 i
    mkdir -p "$dir/d/e" || fail "mkdir $dir"
    head -c $((mib * 524288 + 4321)) /dev/urandom >"$dir/big" || fail "generate $dir/big"
    for i in 1 2 3 4; do
        head -c $((mib * 131072 / 4 * i + i * 777)) /dev/urandom >"$dir/d/mid$i" || fail "generate"
    done
    for i in $(seq 60); do
        head -c $((i * 523 + 11)) /dev/urandom >"$dir/d/e/small$i" || fail "generate"
    done
    (cd "$dir" && find . -type f -print0 | sort -z | xargs -0 sha256sum) >"$dir.sha256" ||
        fail "sha256sum of $dir"
}
