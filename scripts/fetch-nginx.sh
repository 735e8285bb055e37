#!/usr/bin/env bash
# Debian's nginx binary for the gateway benchmark's reference run: downloaded with apt (no install,
# no root-owned files outside the cache) and unpacked under $GITSPACES_CACHE. Prints the binary path.
set -euo pipefail
cache="${GITSPACES_CACHE:-$HOME/.cache/gitspaces}/nginx"
bin="$cache/usr/sbin/nginx"
if [ ! -x "$bin" ]; then
  tmp="$(mktemp -d)"
  trap 'rm -rf "$tmp"' EXIT
  (cd "$tmp" && apt-get download nginx >&2)
  mkdir -p "$cache"
  dpkg -x "$tmp"/nginx_*.deb "$cache"
fi
echo "$bin"
