#!/usr/bin/env bash
# Install Autobahn|Testsuite (wstest) into a git-ignored folder; idempotent.
#
# autobahntestsuite is Python 2 code: `pip install autobahntestsuite` on Python 3 installs a
# release that does not run. What works here: Python 2.7.18 from pyenv, a virtualenv made by
# `virtualenv<20.22` (newer releases refuse Python 2), then autobahntestsuite==0.8.2.
#
# Usage: conformance/setup.sh [DIR]   (default: .conformance at the repository root)
# Prints the path of wstest on success; exits 2 when Python 2.7 is missing.
set -euo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"
dir="${1:-$root/.conformance}"
wstest="$dir/py27/bin/wstest"
if [ -x "$wstest" ] && "$dir/py27/bin/python" -c 'import autobahntestsuite' 2>/dev/null; then
  echo "$wstest"
  exit 0
fi
py27="${PUSHLAB_PYTHON27:-}"
if [ -z "$py27" ]; then
  for candidate in "${PYENV_ROOT:-$HOME/.pyenv}/versions/2.7.18/bin/python" \
                   /root/.pyenv/versions/2.7.18/bin/python "$(command -v python2.7 || true)"; do
    if [ -n "$candidate" ] && [ -x "$candidate" ]; then py27="$candidate"; break; fi
  done
fi
if [ -z "$py27" ]; then
  echo "conformance/setup.sh: Python 2.7 not found (pyenv install 2.7.18, or set PUSHLAB_PYTHON27)" >&2
  exit 2
fi
py3="${PYTHON:-python3.11}"
mkdir -p "$dir"
if [ ! -x "$dir/tools/bin/virtualenv" ]; then
  "$py3" -m venv "$dir/tools"
  "$dir/tools/bin/python" -m pip install -q 'virtualenv<20.22'
fi
rm -rf "$dir/py27"
# Its own app-data folder: virtualenv's shared cache (~/.local/share/virtualenv) is not safe
# for two setups at once (a venv without pip came out of a concurrent run).
"$dir/tools/bin/virtualenv" -q --app-data "$dir/app-data" -p "$py27" "$dir/py27" >&2
"$dir/py27/bin/pip" install -q --disable-pip-version-check autobahntestsuite==0.8.2 >&2
"$dir/py27/bin/python" -c 'import autobahntestsuite' >&2
echo "$wstest"
