#!/usr/bin/env bash
# The supported Pythons found on this machine, newest first: one interpreter path per line.
#   scripts/pythons.sh          every supported version found (3.13, 3.12, 3.11)
#   scripts/pythons.sh 3.12     that version only (nothing when it is not found)
# Each version is looked for as python3.1x on PATH, then in pyenv's versions (pyenv root, or
# ~/.pyenv), then in /usr/bin and /usr/local/bin. A candidate counts only if it runs and
# reports that version: a pyenv shim for a version pyenv has not selected is on PATH and fails.
set -uo pipefail
SUPPORTED=(3.13 3.12 3.11)  # pyproject.toml requires-python ">=3.11,<3.14"
wanted=("${@:-${SUPPORTED[@]}}")
root=$(pyenv root 2>/dev/null || echo "$HOME/.pyenv")
for v in "${wanted[@]}"; do
  for c in "$(command -v "python$v" 2>/dev/null)" "$root"/versions/"$v".*/bin/"python$v" \
      "/usr/local/bin/python$v" "/usr/bin/python$v"; do
    [ -n "$c" ] && [ -x "$c" ] || continue
    got=$("$c" -c 'import sys; print("%d.%d" % sys.version_info[:2])' 2>/dev/null) || continue
    if [ "$got" = "$v" ]; then
      echo "$c"
      break
    fi
  done
done
