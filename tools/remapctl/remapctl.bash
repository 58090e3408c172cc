# bash completion for remapctl(1).  Installed as
# share/bash-completion/completions/remapctl; load it by hand with
#   . tools/remapctl/remapctl.bash
#
# Self-contained (plain compgen over COMP_WORDS/COMP_CWORD), so it works
# without the bash-completion package.  Keep the lists in step with
# remapctl --help and remapctl.pod.

_remapctl_commands="format dump check repair rebind status list map lookup
  remap unmap pending import export scan spare-retest help"
_remapctl_global="-s --spare -o --origin -c --control --accept-origin-change
  -h --help"

# File names, one per line (names with spaces stay whole).
_remapctl_files ()
{
  local IFS=$'\n'
  COMPREPLY=($(compgen -f -- "$1"))
  compopt -o filenames 2>/dev/null
  return 0
}

# The options of one command.
_remapctl_options ()
{
  case "$1" in
    format) echo "--unit --strategy --copies --sparse --force" ;;
    dump|check) echo "--json" ;;
    status) echo "--json --prometheus" ;;
    list|spare-retest) echo "--json" ;;
    map) echo "--svg --columns --rows --color --no-color" ;;
    lookup|remap|pending) echo "-u --unit-numbers --json" ;;
    unmap) echo "-u --unit-numbers --discard-data --json" ;;
    import) echo "--format --block-size --include-nontried --pending --remap
                  --json" ;;
    export) echo "--format --block-size" ;;
    scan) echo "-u --unit-numbers --rate --chunk --state --resume --json
                --progress --no-progress" ;;
  esac
}

_remapctl ()
{
  local cur=${COMP_WORDS[COMP_CWORD]} prev=
  local cmd= i w
  [ "$COMP_CWORD" -gt 0 ] && prev=${COMP_WORDS[COMP_CWORD - 1]}
  COMPREPLY=()

  # The command: the first word that is not an option or an option's value.
  for ((i = 1; i < COMP_CWORD; i++)); do
    w=${COMP_WORDS[i]}
    case "$w" in
      -s|--spare|-o|--origin|-c|--control) ((i++)) ;;
      -*) ;;
      *) cmd=$w; break ;;
    esac
  done

  # Values of options.
  case "$prev" in
    -s|--spare|-o|--origin|--svg|--state|-c|--control)
      _remapctl_files "$cur"
      return 0 ;;
    --strategy)
      COMPREPLY=($(compgen -W "auto minimal linear geometric" -- "$cur"))
      return 0 ;;
    --format|-f)
      if [ "$cmd" = import ]; then
        COMPREPLY=($(compgen -W "badblocks ddrescue smartctl" -- "$cur"))
      else
        COMPREPLY=($(compgen -W "badblocks ddrescue" -- "$cur"))
      fi
      return 0 ;;
    --unit)
      if [ "$cmd" = format ]; then
        COMPREPLY=($(compgen -W "512 1024 2048 4096 8192 16384 32768 65536" \
                       -- "$cur"))
        return 0
      fi ;;
    --copies|--block-size|-b|--columns|--rows|--rate|--chunk)
      return 0 ;;                       # a number: nothing to offer
  esac

  if [ -z "$cmd" ]; then
    if [[ "$cur" == -* ]]; then
      COMPREPLY=($(compgen -W "$_remapctl_global --version" -- "$cur"))
    else
      COMPREPLY=($(compgen -W "$_remapctl_commands" -- "$cur"))
    fi
    return 0
  fi
  if [[ "$cur" == -* ]]; then
    COMPREPLY=($(compgen -W "$(_remapctl_options "$cmd") $_remapctl_global" \
                   -- "$cur"))
    return 0
  fi
  # Positional arguments that are files: SPARE/ORIGIN, import FILE.
  case "$cmd" in
    format|dump|check|repair|rebind|status|list|map|export|import)
      _remapctl_files "$cur" ;;
  esac
  return 0
}

complete -F _remapctl remapctl
