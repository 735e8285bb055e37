#!/usr/bin/env bash
# code-server (VS Code in the browser) for the `vscode-web` IDE of local Gitspaces and the browser
# tests: installed once from the npm registry into $GITSPACES_CACHE with the project's Node 24 and
# reused. Its native modules build at install time (Debian build packages below). Prints the binary.
set -euo pipefail
version="${CODE_SERVER_VERSION:-4.139.1}"
cache="${GITSPACES_CACHE:-$HOME/.cache/gitspaces}/code-server-$version"
bin="$cache/node_modules/.bin/code-server"
if [ ! -x "$bin" ] || [ ! -f "$cache/.complete" ]; then
  bash "$(dirname "$0")/apt-install.sh" g++ make python3 pkg-config libkrb5-dev libsecret-1-dev libx11-dev libxkbfile-dev
  # code-server's install scripts insist on Node 24, and read it from $npm_config_user_agent: run
  # the install on the project's Node 24 (npm ci installs it) with none of the calling npm's
  # settings (under `npm test` those name the machine's Node).
  node24="$(cd "$(dirname "$0")/.." && pwd)/node_modules/node/bin/node"
  if [ -x "$node24" ]; then export PATH="$(dirname "$node24"):$PATH"; fi
  for v in $(compgen -e | grep -i '^npm_'); do unset "$v"; done
  echo "installing code-server $version into $cache with node $(node --version) (once, about 2 minutes)" >&2
  rm -rf "$cache"
  mkdir -p "$cache"
  (cd "$cache" && echo '{"name":"gitspaces-code-server","private":true}' > package.json \
    && npm install --no-audit --no-fund --loglevel=error "code-server@$version" >&2)
  touch "$cache/.complete"
fi
echo "$bin"
