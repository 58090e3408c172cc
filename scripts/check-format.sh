#!/bin/bash
# remap: check that the C sources follow .clang-format.
#
#   scripts/check-format.sh [--fix]
#
# Checks core/ include/ plugin/ tools/ tests/ (*.c, *.h).  With --fix,
# reformats the files in place instead.  Not yet part of scripts/test.sh.
# Environment: CLANG_FORMAT (default clang-format).

set -eu
cd "$(dirname "$0")/.."

cf=${CLANG_FORMAT:-clang-format}
if ! command -v "$cf" >/dev/null 2>&1; then
  echo "$0: $cf not found (apt-get install clang-format)" >&2
  exit 1
fi

mapfile -t files < <(find core include plugin tools tests \
                       -type f \( -name '*.c' -o -name '*.h' \) 2>/dev/null |
                     sort)
if [ ${#files[@]} -eq 0 ]; then
  echo "no C files"
  exit 0
fi

if [ "${1:-}" = --fix ]; then
  exec "$cf" -i "${files[@]}"
fi
"$cf" --dry-run --Werror "${files[@]}"
echo "format ok: ${#files[@]} files"
