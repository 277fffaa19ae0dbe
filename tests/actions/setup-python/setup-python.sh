#!/usr/bin/env bash
# The setup-python stand-in's work (see action.yml).
set -euo pipefail
bin=${SETUP_PYTHON_STAND_IN_BIN:?setup-python stand-in: give the folder of the Python to use with act --env SETUP_PYTHON_STAND_IN_BIN=...}
version=$("$bin/python" -c 'import sys; print("%d.%d.%d" % sys.version_info[:3])')
case "$version" in
  "$WANTED" | "$WANTED".*) ;;
  *) echo "setup-python stand-in: python-version $WANTED asked for, $bin/python is $version" >&2; exit 1;;
esac
echo "$bin" >> "$GITHUB_PATH"
echo "pythonLocation=$(dirname "$bin")" >> "$GITHUB_ENV"
{ echo "python-version=$version"; echo "python-path=$bin/python"; } >> "$GITHUB_OUTPUT"
echo "Python $version from $bin"
