#!/usr/bin/env bash
# `make test-pythons`: the core suite on every supported Python found (scripts/pythons.sh), each
# in its own venv .venv-3.1x with the project and its dev tools but no lab extra, so it also
# shows that the server side runs on what `dependencies` pins. Prints one summary line per
# version; exits non-zero when any version failed or none was found.
set -uo pipefail
cd "$(dirname "$0")/.."
# tests/feed is the sans-I/O core; the server smoke set serves each transport on real sockets.
CORE=(tests/feed tests/servers/test_short_poll.py tests/servers/test_long_poll.py
  tests/servers/test_sse.py tests/servers/test_websocket.py tests/servers/test_publish.py
  tests/servers/test_pages.py tests/test_install.py::test_every_pin_of_pyproject_is_the_locks)
mapfile -t pythons < <(scripts/pythons.sh)
if [ ${#pythons[@]} -eq 0 ]; then
  echo "test-pythons: no Python 3.11-3.13 found" >&2
  exit 1
fi
status=0
summary=()
for py in "${pythons[@]}"; do
  v=$("$py" -c 'import sys; print("%d.%d" % sys.version_info[:2])')
  venv=".venv-$v"
  stamp="$venv/.installed"
  if [ ! -f "$stamp" ] || [ pyproject.toml -nt "$stamp" ] || [ requirements.lock -nt "$stamp" ]; then
    echo "== $venv from $py"
    { [ -x "$venv/bin/python" ] || "$py" -m venv "$venv"; } &&
      "$venv/bin/python" -m pip install -q -c requirements.lock -e '.[dev]' &&
      touch "$stamp" || { summary+=("$v: install failed"); status=1; continue; }
  fi
  full=$("$venv/bin/python" -c 'import platform; print(platform.python_version())')
  echo "== Python $full: pytest ${CORE[*]}"
  log=$(mktemp)
  "$venv/bin/pytest" -q -p no:cacheprovider "${CORE[@]}" 2>&1 | tee "$log"
  rc=${PIPESTATUS[0]}
  summary+=("$full: $(grep -E '^=* ?[0-9]+ (passed|failed)|(passed|failed).* in [0-9.]+s' "$log" | tail -n 1 | tr -d '=')")
  rm -f "$log"
  [ "$rc" -eq 0 ] || status=1
done
echo "== test-pythons"
printf '  %s\n' "${summary[@]}"
exit $status
