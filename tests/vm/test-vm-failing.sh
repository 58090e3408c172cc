#!/bin/bash
# test-vm-failing.sh - issue 11, scenario 2: the origin starts failing under
# a mounted ext4, seen through the kernel's nbd client.
#
#   guest: remap.so (fail-file= rehearsal) -> nbd-client -b 4096 [-C 2] -> /dev/nbd0 -> ext4
#
# For each mode: mkfs.ext4 on a healthy 128 MiB origin, data set a, syncfs;
# then, while data set b is being written, the rule file appears: every
# write to the first 40 MiB (superblock, descriptors, bitmaps, inode table,
# files) fails for good, and so does every write to 96-104 MiB (free space
# when the rules appear), and reads fail once at three points (the
# engine's retries hide them).  Data set c after.  syncfs succeeds, the
# guest's kernel logs no I/O error, remapctl status shows the remaps, e2fsck
# -fn is clean, and every checksum matches, also after a restart of nbdkit
# with cold caches (lib/guest.sh g_failing_run).  Exit 0/1/77.

start_r() {
    g_start "$1" "$G/$MODE.origin" spare="$G/$MODE.spare" format=yes \
        fail-file="$G/$MODE.faults" read-retries=2 read-retry-delay=1
}

inject() {
    cat >"$G/$MODE.faults.new" <<RULES
# the first 40 MiB refuse every write, for good
write:0+40m
# free space too
write:96m+8m
# reads fail once here and there: the retries must hide it
read:0+128m,after=20,times=1
read:0+128m,after=100,times=1
read:0+128m,after=300,times=1
RULES
    mv "$G/$MODE.faults.new" "$G/$MODE.faults" || gfail "install the rule file"
    glog "rule file installed: writes to 0-40 MiB and 96-104 MiB fail, three reads fail once"
}

guest_main() {
    g_init test-vm-failing
    for m in $VM_MODES; do
        g_mode "$m"
        g_file "$G/$MODE.origin" 128
        g_file "$G/$MODE.spare" 64
        rm -f "$G/$MODE.faults"
        g_failing_run start_r inject "fail-file rules"
        grep -a 'remap: exit:' "$G/$MODE-r1.log" | tail -n 1 | grep -qE ' retries=[1-9]' ||
            gfail "no origin read was retried: the read rules did nothing"
        rm -f "$G/$MODE.origin" "$G/$MODE.spare"
        MODE=
    done
    g_pass "scenario 2 (origin fails while mounted, fail-file) in modes: $VM_MODES"
}

if [ "${1:-}" = --guest ]; then
    # shellcheck source=tests/vm/lib/guest.sh
    . "$(dirname "$0")/lib/guest.sh"
    guest_main
    exit 0
fi

# shellcheck source=tests/vm/lib/host.sh
. "$(dirname "$0")/lib/host.sh"
vm_init test-vm-failing jq
for s in a b c; do vm_data "$JOB/$s" 2; done
vm_run
