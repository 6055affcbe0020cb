#!/usr/bin/env bash
# The core's layering, checked: arrows point from clients into `io/`, from the bridge into the
# clients it drives, and from the adapters into everything, never back; no file outside tests
# grows past the size one reads in a sitting.
set -euo pipefail
cd "$(dirname "$0")/../.."
fail=0

# module → the core modules it may import (besides itself, `error` and `io`).
declare -A allowed=(
  [io]=""
  [audio]=""
  [auth]=""
  [chats]="auth"
  [dm]=""
  [spaces]="audio"
  [gateway]="auth chats"
)
for module in "${!allowed[@]}"; do
  for other in io audio auth chats dm spaces gateway ffi component testkit; do
    [ "$other" = "$module" ] && continue
    [ "$other" = io ] && [ "$module" != io ] && continue
    case " ${allowed[$module]} " in *" $other "*) continue ;; esac
    # Test files may reach anywhere (they drive clients together); the library may not.
    hits=$(grep -rnE "crate::$other\b|super::super::$other\b" "src/$module" --include='*.rs' \
      | grep -vE '/tests?(\.rs|/)|_tests\.rs|^\s*//' || true)
    if [ -n "$hits" ]; then
      echo "layers: src/$module must not import $other:"
      echo "$hits" | sed 's/^/  /'
      fail=1
    fi
  done
done

# One concern per file: nothing in src/ (tests aside) over ~400 lines.
limit=${MOLTLINK_FILE_LIMIT:-420}
while read -r lines file; do
  [ "$file" = total ] && continue
  if [ "$lines" -gt "$limit" ]; then
    echo "layers: $file has $lines lines (limit $limit): split it by concern"
    fail=1
  fi
done < <(find src -name '*.rs' ! -name '*tests*.rs' ! -path '*/tests/*' ! -path 'src/bin/*' -print0 | xargs -0 wc -l)

[ $fail -eq 0 ] && echo "layers: io imports no client, no client imports one it does not drive, no file over $limit lines"
exit $fail
