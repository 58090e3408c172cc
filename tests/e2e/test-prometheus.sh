#!/bin/bash
# test-prometheus.sh - remapctl status --prometheus.
#
# - offline and online (control socket), the output passes a strict checker
#   of the text exposition format (lib/promcheck.py) and, when installed,
#   `promtool check metrics' (scripts/test.sh installs it);
# - every value equals the one `status --json' gives for the same state,
#   after remaps and a pending unit;
# - origin and spare labels are escaped: paths holding a double quote, a
#   backslash and a newline come back intact through the checker's parser;
# - the checker is not a rubber stamp: broken outputs are rejected;
# - usage errors (--prometheus with --json) exit 2 and change nothing.
#
# Needs: nbdkit, jq, python3.  Exit 0 pass, 1 fail, 77 skip.

. "$(dirname "$0")/lib/common.sh"
e2e_init test-prometheus
e2e_require jq python3 cmp
PROMTOOL=
command -v promtool >/dev/null 2>&1 && PROMTOOL=" and promtool"
CHECK="python3 $REMAP_SOURCE_DIR/tests/e2e/lib/promcheck.py --require-label origin --require-label spare"
U=4096

# A directory whose name needs every escape of a label value.
D="$WORK/odd\"dir\\with
newline"
mkdir -p "$D" || fail "mkdir $D"
O=$D/origin.img
S=$D/spare.img
make_file "$O" $((8 << 20)) random
make_file "$S" $((2 << 20)) zero
expect 0 format "$O" "$S" --unit $U

# checked PROM JSON: the checker's families ($FAM) for a status
# --prometheus output, compared with a status --json output.
checked() {
    FAM=$($CHECK <<<"$1") || fail "promcheck rejected the output: $1"
    if [ -n "$PROMTOOL" ]; then
        promtool check metrics <<<"$1" >"$WORK/promtool.out" 2>&1 ||
            fail "promtool check metrics: $(cat "$WORK/promtool.out")"
    fi
    local pairs key metric want got
    pairs="reallocated_units:reallocated_units pending_units:pending_units
        uncorrectable_units:uncorrectable_units lost_granules:lost_granules
        spare_free_units:spare_free_units spare_usable_units:spare_usable_units
        spare_total_units:spare_total_units spare_bad_units:spare_bad_units
        metadata_copies_valid:copies_valid metadata_copies:copies_total
        generation:generation reallocation_events_total:reallocation_events
        read_errors_total:read_errors write_errors_total:write_errors
        spare_errors_total:spare_errors read_retries_total:retries
        remaps_refused_total:enospc_events"
    for p in $pairs; do
        metric=remap_${p%%:*} key=${p#*:}
        want=$(jq ".counters.$key" <<<"$2")
        got=$(jq ".$metric.samples[0].value | floor" <<<"$FAM")
        [ "$got" = "$want" ] || fail "$metric is $got, status --json says $key=$want"
    done
    [ "$(jq '.remap_unit_size_bytes.samples[0].value' <<<"$FAM")" = "$(jq '.geometry.unit' <<<"$2")" ] ||
        fail "unit size differs"
    [ "$(jq '.remap_origin_size_bytes.samples[0].value' <<<"$FAM")" = "$(jq '.origin.size' <<<"$2")" ] ||
        fail "origin size differs"
    [ "$(jq -r '.remap_reallocated_units.samples[0].labels.origin' <<<"$FAM")" = "$(jq -r .origin.name <<<"$2")" ] ||
        fail "origin label is not the origin's name: $(jq -c '.remap_reallocated_units.samples[0].labels' <<<"$FAM")"
    [ "$(jq -r '.remap_reallocated_units.samples[0].labels.spare' <<<"$FAM")" = "$(jq -r .spare.name <<<"$2")" ] ||
        fail "spare label is not the spare's name"
    [ "$(jq -r '[.remap_state.samples[] | select(.value == 1) | .labels.state] | join(",")' <<<"$FAM")" = "$(jq -r .state <<<"$2")" ] ||
        fail "remap_state does not name the state $(jq -r .state <<<"$2")"
}

# ---- offline --------------------------------------------------------------------
expect 0 remap -s "$S" -o "$O" 800 16           # units 100, 101
expect 0 pending -s "$S" -o "$O" -u 1500
expect 0 status --prometheus -s "$S" -o "$O"
P=$OUT
expect 0 status --json -s "$S" -o "$O"
checked "$P" "$OUT"
[ "$(jq '.remap_reallocated_units.samples[0].value' <<<"$FAM")" = 2 ] || fail "want 2 reallocated units"
[ "$(jq '.remap_pending_units.samples[0].value' <<<"$FAM")" = 1 ] || fail "want 1 pending unit"
[ "$(jq -r '.remap_reallocated_units.samples[0].labels.origin' <<<"$FAM")" = "$O" ] ||
    fail "origin label did not survive escaping: $(jq -c '.remap_reallocated_units.samples[0].labels' <<<"$FAM")"
grep -q 'odd\\"dir\\\\with\\nnewline' <<<"$P" || fail "label escapes not as the format wants: $(head -n 3 <<<"$P")"
ok "offline: the checker$PROMTOOL accept it; values equal status --json; labels escaped"

# Positional SPARE ORIGIN, as for status.
expect 0 status --prometheus "$S" "$O"
[ "$OUT" = "$P" ] || fail "positional form differs"

# ---- usage errors change nothing -------------------------------------------------
cp "$S" "$WORK/spare.before"
expect 2 status --prometheus --json -s "$S" -o "$O"
grep -q -- "--json does not go with --prometheus" <<<"$ERR" || fail "message: $ERR"
cmp -s "$S" "$WORK/spare.before" || fail "a refused command changed the spare"
ok "status --prometheus --json: usage error (exit 2), spare unchanged"

# ---- the checker rejects what it must ---------------------------------------------
bad() {
    if $CHECK <<<"$2" >/dev/null 2>"$WORK/chk.err"; then
        fail "promcheck accepted $1"
    fi
}
bad "an unescaped quote" "$(sed '3s/origin="/origin="x"/' <<<"$P")"
bad "a sample before its TYPE" "$(sed '2d' <<<"$P")"
bad "a duplicate series" "$P
$(sed -n 3p <<<"$P")"
bad "a timestamp" "$(sed '3s/$/ 1700000000000/' <<<"$P")"
bad "a counter without _total" "$(sed 's/remap_read_errors_total/remap_read_errors/' <<<"$P")"
bad "a missing label" "$(sed '3s/,spare="[^"]*"//' <<<"$P")"
bad "a bad escape" "$(sed '3s/origin="/origin="\\q/' <<<"$P")"
bad "a non-number" "$(sed '3s/ [0-9]*$/ two/' <<<"$P")"
ok "promcheck rejects 8 kinds of broken output"

# ---- online ------------------------------------------------------------------------
nbdkit "$PLUGIN" --dump-plugin 2>/dev/null | grep -q '^remap_control=yes$' ||
    skip "the plugin has no control socket (online part)"
C=$WORK/ctl.sock
start_server srv "$O" spare="$S" control="$C"
expect 0 remap -c "$C" -u 200 3
expect 0 status --prometheus -c "$C"
P2=$OUT
expect 0 status --json -c "$C"
checked "$P2" "$OUT"
[ "$(jq '.remap_reallocated_units.samples[0].value' <<<"$FAM")" = 5 ] || fail "online: want 5 reallocated units"
[ "$(jq '.remap_reallocation_events_total.samples[0].value | floor' <<<"$FAM")" -ge 3 ] ||
    fail "online: events counter did not count the remaps"
ok "online through the control socket: checked, values equal status --json"
stop_server
E2E_RESULT=0
