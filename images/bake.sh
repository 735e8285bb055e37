#!/usr/bin/env bash
# The Gitspaces VM image recipe: turns a stock Debian 12 / Ubuntu cloud image into one whose
# instances start a Gitspace without downloading anything. Shared by Packer (images/gitspaces.pkr.hcl)
# and the tests (scripts/vm-images.sh baked). Run as root. Idempotent: a second run changes nothing.
#
#   bake.sh --bundle FILE [--code-server DIR] [--no-docker]
#
#   --bundle FILE      the agent bundle, gitspaces-agent-<version>-linux-<arch>.tar.gz, whose single
#                      top-level directory gitspaces-agent-<version>/ holds bin/node,
#                      bin/gitspaces-agent, lib/ and node_modules/. Unpacked to
#                      /opt/gitspaces/<version>/ (+ the symlink /opt/gitspaces/current), with the
#                      tarball's sha256 in /opt/gitspaces/<version>/.sha256: an instance's startup
#                      script skips its download when that version and sha256 are there.
#   --code-server DIR  a prebuilt code-server install (a release directory with bin/code-server, or an
#                      npm install with node_modules/code-server), copied to /opt/code-server and put
#                      on PATH as /usr/local/bin/code-server. Without it, code-server is not baked.
#   --no-docker        do not install docker.io and docker-compose (installed by default: dev containers run in them).
# The same settings as environment variables: GITSPACES_BUNDLE, GITSPACES_CODE_SERVER,
# GITSPACES_NO_DOCKER=1.
set -euo pipefail

log() { echo "bake: $*" >&2; }
die() { echo "bake: error: $*" >&2; exit 1; }

bundle="${GITSPACES_BUNDLE:-}"
code_server="${GITSPACES_CODE_SERVER:-}"
docker="yes"
[ "${GITSPACES_NO_DOCKER:-}" = 1 ] && docker="no"
while [ $# -gt 0 ]; do
  case "$1" in
    --bundle) [ $# -ge 2 ] || die "--bundle needs a FILE"; bundle="$2"; shift 2 ;;
    --code-server) [ $# -ge 2 ] || die "--code-server needs a DIR"; code_server="$2"; shift 2 ;;
    --no-docker) docker="no"; shift ;;
    -h|--help) sed -n '2,/^set -euo/p' "$0" | sed '$d; s/^# \{0,1\}//'; exit 0 ;;
    *) die "unknown argument: $1 (see --help)" ;;
  esac
done
[ -n "$bundle" ] || die "--bundle FILE is required (see --help)"
[ -f "$bundle" ] || die "no such bundle: $bundle"
[ -z "$code_server" ] || [ -d "$code_server" ] || die "no such code-server directory: $code_server"
[ "$(id -u)" -eq 0 ] || die "run as root"
# shellcheck disable=SC1091
. /etc/os-release 2>/dev/null || true
case " ${ID:-} ${ID_LIKE:-} " in *" debian "*|*" ubuntu "*) ;; *) die "Debian or Ubuntu required (found ${ID:-unknown})" ;; esac

# Baking in a chroot or a container (no systemd running): postinst scripts must not start services.
if [ ! -d /run/systemd/system ] && [ ! -e /usr/sbin/policy-rc.d ]; then
  printf '#!/bin/sh\nexit 101\n' >/usr/sbin/policy-rc.d
  chmod 0755 /usr/sbin/policy-rc.d
  trap 'rm -f /usr/sbin/policy-rc.d' EXIT
fi

# --- the agent bundle ------------------------------------------------------------------------------
sha="$(sha256sum "$bundle" | cut -d' ' -f1)"
top="$(tar -tzf "$bundle" 2>/dev/null | head -n 1 || true)"
top="${top%%/*}"
case "$top" in gitspaces-agent-?*) version="${top#gitspaces-agent-}" ;; *) die "$bundle: its top-level directory is '$top', not gitspaces-agent-<version>/" ;; esac
name="$(basename "$bundle")"
case "$name" in
  "gitspaces-agent-$version-linux-"*.tar.gz)
    arch="${name#"gitspaces-agent-$version-linux-"}"; arch="${arch%.tar.gz}"
    case "$(uname -m):$arch" in
      x86_64:x64|x86_64:amd64|aarch64:arm64|aarch64:aarch64) ;;
      *) die "$name is for linux-$arch, this machine is $(uname -m)" ;;
    esac ;;
  *) log "warning: $name is not named gitspaces-agent-$version-linux-<arch>.tar.gz" ;;
esac
dest="/opt/gitspaces/$version"
if [ -f "$dest/.sha256" ] && [ "$(cat "$dest/.sha256")" = "$sha" ] && [ -x "$dest/bin/gitspaces-agent" ]; then
  log "agent $version already installed ($sha)"
else
  log "installing agent $version into $dest"
  mkdir -p /opt/gitspaces
  tmp="$(mktemp -d /opt/gitspaces/.unpack-XXXXXX)"
  tar -xzf "$bundle" -C "$tmp" --strip-components=1 --no-same-owner
  for f in bin/node bin/gitspaces-agent; do [ -x "$tmp/$f" ] || { rm -rf "$tmp"; die "$name has no executable $top/$f"; }; done
  for d in lib node_modules; do [ -d "$tmp/$d" ] || { rm -rf "$tmp"; die "$name has no $top/$d/"; }; done
  "$tmp/bin/node" --version >/dev/null 2>&1 || { rm -rf "$tmp"; die "$name: bin/node does not run on this machine"; }
  chmod 0755 "$tmp"
  echo "$sha" >"$tmp/.sha256"
  rm -rf "$dest"
  mv "$tmp" "$dest"
fi
if [ "$(readlink /opt/gitspaces/current 2>/dev/null || true)" != "$version" ]; then
  ln -sfn "$version" /opt/gitspaces/current.new
  mv -T /opt/gitspaces/current.new /opt/gitspaces/current
fi

# --- Debian packages -----------------------------------------------------------------------------
packages=(ca-certificates curl git tar gzip openssh-sftp-server) # sftp-server: SFTP for JetBrains Gateway, scp
[ "$docker" = yes ] && packages+=(docker.io docker-compose) # compose: dockerComposeFile dev containers
missing=()
for p in "${packages[@]}"; do dpkg -s "$p" >/dev/null 2>&1 || missing+=("$p"); done
if [ ${#missing[@]} -gt 0 ]; then
  log "installing ${missing[*]}"
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq >/dev/null
  apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
  apt-get clean
  rm -rf /var/lib/apt/lists/*
else
  log "packages present: ${packages[*]}"
fi
if [ "$docker" = yes ] && command -v systemctl >/dev/null; then
  systemctl enable docker.service >/dev/null 2>&1 || log "warning: could not enable docker.service"
fi

# --- code-server -----------------------------------------------------------------------------------
if [ -z "$code_server" ]; then
  log "code-server: no --code-server DIR given, not baked (instances install it when a Gitspace needs it)"
else
  src="$(cd "$code_server" && pwd)"
  if [ -x "$src/bin/code-server" ]; then
    entry="/opt/code-server/bin/code-server"
  elif [ -e "$src/node_modules/code-server/out/node/entry.js" ]; then
    entry="/opt/code-server/node_modules/code-server/out/node/entry.js"
  else
    die "$code_server: neither bin/code-server (a release) nor node_modules/code-server (an npm install)"
  fi
  stamp="$(cd "$src" && find . -type f -printf '%P %s %T@\n' | sort | sha256sum | cut -d' ' -f1)"
  if [ -f /opt/code-server/.stamp ] && [ "$(cat /opt/code-server/.stamp)" = "$stamp" ]; then
    log "code-server already installed"
  else
    log "installing code-server from $code_server into /opt/code-server"
    rm -rf /opt/code-server.new
    cp -a "$src" /opt/code-server.new
    echo "$stamp" >/opt/code-server.new/.stamp
    rm -rf /opt/code-server
    mv /opt/code-server.new /opt/code-server
  fi
  if [ "$entry" = /opt/code-server/bin/code-server ]; then
    ln -sfn "$entry" /usr/local/bin/code-server
  else # an npm install runs on the agent bundle's Node
    rm -f /usr/local/bin/code-server
    printf '#!/bin/sh\nexec /opt/gitspaces/current/bin/node %s "$@"\n' "$entry" >/usr/local/bin/code-server
    chmod 0755 /usr/local/bin/code-server
  fi
fi
log "done: agent $version at /opt/gitspaces/current, docker: $docker, code-server: $([ -n "$code_server" ] && echo yes || echo no)"
