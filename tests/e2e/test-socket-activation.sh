#!/bin/bash
# test-socket-activation.sh - remap@.service's command line, socket
# activated, as systemd would run it.
#
# systemd-socket-activate plays systemd's part: it listens on the NBD
# socket and starts the ExecStart= line of build/systemd/remap@.service
# (with /etc/remap/NAME.conf's variables from a conf file made here, and
# the plugin of the build tree) on the first connection, passing the
# socket in LISTEN_FDS.  Then: qemu-io reads and writes through it, the
# control socket named by CONTROL= answers remapctl, a remap through it
# moves the unit, and SIGTERM stops the server cleanly.
#
# Needs: nbdkit, systemd-socket-activate, qemu-io, jq.  Exit 0/1/77.

. "$(dirname "$0")/lib/common.sh"
e2e_init test-socket-activation
e2e_require systemd-socket-activate qemu-io jq
UNIT=$REMAP_BUILD_DIR/systemd/remap@.service
[ -s "$UNIT" ] || fail "$UNIT missing (cmake configures it)"
nbdkit "$PLUGIN" --dump-plugin 2>/dev/null | grep -q '^remap_control=yes$' ||
    skip "the plugin has no control socket"

O=$WORK/origin.img
S=$WORK/spare.img
make_file "$O" $((4 << 20)) random
make_file "$S" $((1 << 20)) zero
expect 0 format "$O" "$S" --unit 4096
cat >"$WORK/demo.conf" <<CONF
ORIGIN=$O
SPARE=$S
CONTROL=$WORK/demo.ctl
OPTIONS="read-retries=1 direct=no"
CONF

# The ExecStart= line, its variables taken from the conf file as systemd's
# EnvironmentFile= does ("\${X}" one word, "\$X" split on spaces), the
# installed plugin's path replaced by the build tree's.
line=$(sed -n 's/^ExecStart=//p' "$UNIT")
[ -n "$line" ] || fail "no ExecStart= in $UNIT"
read -r -a words <<<"$line"
set -a
. "$WORK/demo.conf"
set +a
cmd=()
for w in "${words[@]}"; do
    case "$w" in
        *nbdkit-remap-plugin.so|remap) cmd+=("$PLUGIN") ;;
        '$OPTIONS') read -r -a opts <<<"$OPTIONS"; cmd+=("${opts[@]}") ;;
        *) cmd+=("$(eval "printf '%s' \"$w\"")") ;;
    esac
done
log "command: ${cmd[*]}"
[ "${cmd[0]##*/}" = nbdkit ] || fail "ExecStart does not run nbdkit: ${cmd[0]}"

SOCK=$WORK/demo.sock
systemd-socket-activate -l "$SOCK" -- "${cmd[@]}" >>"$WORK/srv.log" 2>&1 &
SA_PID=$!
E2E_PIDS+=("$SA_PID")
for _ in $(seq 100); do [ -S "$SOCK" ] && break; sleep 0.1; done
[ -S "$SOCK" ] || fail "systemd-socket-activate did not listen on $SOCK"
[ -e "$WORK/demo.ctl" ] && fail "the server started before the first connection"
URI="nbd+unix:///?socket=$SOCK"
qio "$URI" "read -v 0 512" "write -P 0x5a $((8 * 4096)) 4096" "flush" "read -P 0x5a $((8 * 4096)) 4096"
[ -S "$WORK/demo.ctl" ] || fail "the server did not start on the first connection"
ok "first connection started nbdkit with the socket from LISTEN_FDS; I/O works"

expect 0 status -c "$WORK/demo.ctl" --json
[ "$(jq -r .state <<<"$OUT")" = healthy ] || fail "status: $OUT"
expect 0 remap -c "$WORK/demo.ctl" -u 8
qio "$URI" "read -P 0x5a $((8 * 4096)) 4096"
ok "CONTROL= from the conf file answers remapctl; a remap keeps the data"

stop_server "$SA_PID"
[ -e "$WORK/demo.ctl" ] && fail "control socket left behind"
ok "SIGTERM: clean exit, control socket removed"
E2E_RESULT=0
