#!/bin/bash
# tests/completion/test-completion.sh - the bash completion of remapctl
# (tools/remapctl/remapctl.bash), driven as bash drives it: COMP_WORDS and
# COMP_CWORD set, _remapctl called, COMPREPLY read.
#
# - prefixes of commands, of a command's options and of option values;
# - the command is found after global options and their values;
# - file names (one with a space) after --svg and for SPARE;
# - the lists agree with `remapctl --help': every command and option there
#   is completed, and nothing is completed that remapctl does not know.
#
# Exit 0 pass, 1 fail.

set -u
src=${REMAP_SOURCE_DIR:-$(cd "$(dirname "$0")/../.." && pwd)}
bld=${REMAP_BUILD_DIR:-$src/build}
comp=$src/tools/remapctl/remapctl.bash
fails=0

# shellcheck source=/dev/null
. "$comp" || { echo "FAIL: cannot source $comp"; exit 1; }
complete -p remapctl >/dev/null 2>&1 || { echo "FAIL: no complete -F for remapctl"; exit 1; }

# got WORDS...: the sorted completions of the last word.
got() {
    COMP_WORDS=("$@")
    COMP_CWORD=$(($# - 1))
    COMPREPLY=()
    _remapctl
    printf '%s\n' "${COMPREPLY[@]}" | sort | tr '\n' ' ' | sed 's/ $//'
}
want() {
    local expect=$1 g
    shift
    g=$(got "$@")
    if [ "$g" = "$expect" ]; then
        echo "ok: '$*' -> $g"
    else
        echo "FAIL: '$*' -> '$g', want '$expect'"
        fails=$((fails + 1))
    fi
}

want "status" remapctl st
want "scan spare-retest status" remapctl s
want "map" remapctl ma
want "rebind remap repair" remapctl -c /run/x.ctl re
want "rebind remap repair" remapctl --spare sp.img -o o.img re
want "--prometheus" remapctl status --pr
want "--spare --svg" remapctl map --s
want "--color --columns --control" remapctl map --co
want "--discard-data" remapctl unmap 8 --d
want "--json" remapctl unmap 8 --j
want "geometric" remapctl format o s --strategy g
want "4096" remapctl format o s --unit 40
want "ddrescue" remapctl import f --format d
want "badblocks" remapctl export -f b
want "" remapctl map --columns ""
want "--version" remapctl --v

tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
touch "$tmp/my map.svg" "$tmp/spare.img"
want "$tmp/my map.svg" remapctl map --svg "$tmp/my"
want "$tmp/spare.img" remapctl status "$tmp/sp"

# Agreement with remapctl --help.
if [ -x "$bld/remapctl" ]; then
    help=$("$bld/remapctl" --help)
    cmds=$(sed -n 's/^  \([a-z][a-z-]*\) .*/\1/p; s/^  \([a-z][a-z-]*\)$/\1/p' <<<"$help" | sort -u)
    [ "$(wc -w <<<"$cmds")" -ge 15 ] ||
        { echo "FAIL: found only these commands in --help: $cmds"; fails=$((fails + 1)); }
    for c in $cmds; do
        grep -qw -- "$c" <<<"$_remapctl_commands" ||
            { echo "FAIL: command $c of --help is not completed"; fails=$((fails + 1)); }
    done
    for c in $_remapctl_commands; do
        [ "$c" = help ] && continue
        grep -qx -- "$c" <<<"$cmds" ||
            { echo "FAIL: completion offers $c, which --help does not list"; fails=$((fails + 1)); }
        for o in $(_remapctl_options "$c"); do
            [ "$o" = --unit-numbers ] && continue   # spelled -u in --help
            grep -q -- "$o\\b" <<<"$help" ||
                { echo "FAIL: option $o of $c is not in --help"; fails=$((fails + 1)); }
        done
    done
    for o in $(grep -o -- '--[a-z][a-z-]*' <<<"$help" | sort -u); do
        grep -q -- "$o\\b" "$comp" ||
            { echo "FAIL: option $o of --help is not completed"; fails=$((fails + 1)); }
    done
    echo "ok: commands and options agree with remapctl --help"
else
    echo "FAIL: $bld/remapctl not built"
    fails=$((fails + 1))
fi

[ "$fails" = 0 ] || { echo "$fails failure(s)"; exit 1; }
echo PASS
