#!/usr/bin/env bash
# Installs moto's standalone server (the AWS peer for the EC2 tests) from PyPI into a venv in the
# cache outside the repo, once. Prints the path of moto_server.
set -euo pipefail
MOTO_VERSION="${MOTO_VERSION:-5.2.5}"
CACHE="${GITSPACES_CACHE:-$HOME/.cache/gitspaces}"
VENV="$CACHE/moto-$MOTO_VERSION"
if [ -x "$VENV/bin/moto_server" ]; then echo "$VENV/bin/moto_server"; exit 0; fi
mkdir -p "$CACHE"
exec 9>"$CACHE/.moto.lock"
flock 9
if [ -x "$VENV/bin/moto_server" ]; then echo "$VENV/bin/moto_server"; exit 0; fi
command -v python3 >/dev/null || { echo "install-moto: python3 is required" >&2; exit 1; }
echo "install-moto: installing moto[server]==$MOTO_VERSION into $VENV" >&2
# A half-built venv (interrupted install) has no moto_server yet: start it over.
rm -rf "$VENV"
python3 -m venv "$VENV"
"$VENV/bin/pip" install --quiet --disable-pip-version-check "moto[server]==$MOTO_VERSION" >&2
echo "$VENV/bin/moto_server"
