#!/usr/bin/env bash
# Builds the test "VM" images from Debian packages (no image registry needed) and imports them into
# the Docker daemon named by $DOCKER_HOST. Cached: a second call returns at once. Prints the tag.
#
#   scripts/vm-images.sh stock
#       gitspaces-test/debian-12:stock: a stock GCE/EC2-like Debian 12 (systemd as init, bash, curl,
#       git, sudo, ... no node, no docker, no agent) plus a fake cloud guest that runs
#       /var/lib/fake-cloud/user-data the way the cloud would (see the recipe below).
#   scripts/vm-images.sh baked --bundle FILE [--code-server DIR] [--no-docker] [--tag TAG]
#       gitspaces-test/debian-12:baked (or TAG): stock + images/bake.sh (the Packer recipe) run
#       inside it; its cache key includes the bundle's sha256.
#
# The stock rootfs tarball is kept under $GITSPACES_CACHE/vm-images/<recipe-hash>/ (the hash of the
# recipe block below), so it is built once (mmdebstrap, about 2 minutes cold); the images carry
# their key in the label gitspaces.recipe, so they are re-imported/re-baked only when it changes.
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
root="$(dirname "$here")"
CACHE="${GITSPACES_CACHE:-$HOME/.cache/gitspaces}"
STOCK_TAG="gitspaces-test/debian-12:stock"
BAKED_TAG="gitspaces-test/debian-12:baked" # baked --tag TAG changes it
log() { echo "vm-images: $*" >&2; }
die() { log "$*"; exit 1; }
[ -n "${DOCKER_HOST:-}" ] || die "DOCKER_HOST is not set (the test harness's own dockerd, see test/support/docker.ts)"
command -v docker >/dev/null || die "docker client missing (bash scripts/apt-install.sh docker.io)"

# --- recipe begin (everything up to "recipe end" is hashed into the stock image's cache key) ------
SUITE=bookworm
PACKAGES=(systemd systemd-sysv dbus bash curl ca-certificates tar gzip coreutils util-linux git sudo
  passwd adduser procps iproute2 openssh-client less)
MIRRORS=(
  "deb http://deb.debian.org/debian bookworm main"
  "deb http://deb.debian.org/debian bookworm-updates main"
  "deb http://deb.debian.org/debian-security bookworm-security main"
)

# The fake cloud guest. Cloud semantics it emulates:
#   gce: the startup script (metadata `startup-script`) runs on EVERY boot, as root, after the
#        network is up (google-startup-scripts.service).
#   ec2: a user-data shell script runs once per instance, on its FIRST boot only (cloud-init's
#        scripts_user module, per-instance semaphore /var/lib/cloud/instances/<id>/sem/).
# The payload's stdout+stderr are appended to /var/log/fake-cloud/console.log, the "serial console",
# after a timestamped header line; a footer line tells its exit code.
write_guest() { # $1: the rootfs (or a staging dir laid out like it)
  install -d "$1/usr/local/lib/fake-cloud" "$1/etc/systemd/system" "$1/etc/fake-cloud" \
    "$1/var/lib/fake-cloud" "$1/var/log/fake-cloud"
  cat >"$1/usr/local/lib/fake-cloud/guest" <<'GUEST'
#!/bin/bash
# Fake cloud guest: runs /var/lib/fake-cloud/user-data as the cloud would (see scripts/vm-images.sh).
set -u
kind="$(cat /etc/fake-cloud/kind 2>/dev/null || true)"
id="$(cat /etc/fake-cloud/instance-id 2>/dev/null || true)"
payload=/var/lib/fake-cloud/user-data
console=/var/log/fake-cloud/console.log
mkdir -p /var/log/fake-cloud /var/lib/fake-cloud
n=$(( $(cat /var/lib/fake-cloud/boots 2>/dev/null || echo 0) + 1 ))
echo "$n" >/var/lib/fake-cloud/boots
say() { printf '[%s] fake-cloud(%s): %s\n' "$(date -u +%Y-%m-%dT%H:%M:%S.%3NZ)" "${kind:-none}" "$*" >>"$console"; }
case "$kind" in
  gce) ;;
  ec2)
    [ -n "$id" ] || { say "boot $n: no /etc/fake-cloud/instance-id"; exit 1; }
    sem="/var/lib/cloud/instances/$id/sem/config_scripts_user"
    if [ -e "$sem" ]; then
      say "boot $n of instance $id: user-data already ran on this instance's first boot, skipped"
      exit 0
    fi
    # cloud-init takes the semaphore before it runs the module: a crash or reboot mid-run does
    # not run it again.
    mkdir -p "${sem%/*}" && date -u +%s >"$sem"
    ln -sfn "/var/lib/cloud/instances/$id" /var/lib/cloud/instance
    ;;
  *) say "boot $n: /etc/fake-cloud/kind is neither gce nor ec2, nothing to run"; exit 0 ;;
esac
if [ ! -s "$payload" ]; then say "boot $n of instance $id: no user-data"; exit 0; fi
say "boot $n of instance $id: running user-data"
bash "$payload" </dev/null >>"$console" 2>&1
rc=$?
say "user-data exited with code $rc"
exit 0
GUEST
  chmod 0755 "$1/usr/local/lib/fake-cloud/guest"
  cat >"$1/etc/systemd/system/fake-cloud.service" <<'UNIT'
[Unit]
Description=Fake cloud guest: the instance's startup script / user-data
Wants=network-online.target
After=network-online.target

[Service]
Type=oneshot
ExecStart=/usr/local/lib/fake-cloud/guest
RemainAfterExit=yes
TimeoutStartSec=0
# As google-startup-scripts.service: what the script starts in the background outlives it.
KillMode=process

[Install]
WantedBy=multi-user.target
UNIT
}

build_rootfs() { # $1: output tarball
  local work="$2"
  write_guest "$work/overlay"
  # Cloud images ship an empty machine-id (one is made on first boot); units that cannot work in a
  # container are masked (getty on a console that is not there).
  # shellcheck disable=SC2016 # the hooks' "$1" (the rootfs) is mmdebstrap's to expand
  mmdebstrap --quiet --variant=minbase --include="$(IFS=,; echo "${PACKAGES[*]}")" \
    --aptopt='Acquire::Check-Valid-Until "false"' \
    --dpkgopt='path-exclude=/usr/share/man/*' --dpkgopt='path-exclude=/usr/share/doc/*' \
    --dpkgopt='path-include=/usr/share/doc/*/copyright' --dpkgopt='path-exclude=/usr/share/locale/*' \
    --customize-hook="tar -C '$work/overlay' -c etc usr var | tar -C \"\$1\" -x --no-same-owner --no-overwrite-dir" \
    --customize-hook='chroot "$1" systemctl enable fake-cloud.service >/dev/null 2>&1' \
    --customize-hook='chroot "$1" systemctl mask getty@tty1.service serial-getty@.service console-getty.service systemd-firstboot.service >/dev/null 2>&1' \
    --customize-hook=': >"$1/etc/machine-id"; rm -f "$1/var/lib/dbus/machine-id"' \
    --customize-hook='rm -rf "$1"/var/lib/apt/lists/* "$1"/var/cache/apt/*.bin' \
    "$SUITE" "$1" "${MIRRORS[@]}" >&2
}
# --- recipe end ------------------------------------------------------------------------------------
# The image's config (docker import takes no STOPSIGNAL: ContainerVms passes --stop-signal).
IMPORT_CHANGES=('CMD ["/sbin/init"]' 'ENV container=docker')

recipe_hash() { sed -n '/^# --- recipe begin/,/^# --- recipe end/p' "$0" | sha256sum | cut -c1-16; }
image_key() { docker image inspect -f '{{index .Config.Labels "gitspaces.recipe"}}' "$1" 2>/dev/null || true; }

stock() {
  local key dir tar t0
  dir="$CACHE/vm-images/$(recipe_hash)"
  key="$( (basename "$dir"; printf '%s\n' "${IMPORT_CHANGES[@]}") | sha256sum | cut -c1-16)"
  [ "$(image_key "$STOCK_TAG")" = "$key" ] && return 0
  tar="$dir/debian-12-stock.tar"
  mkdir -p "$dir"
  exec 9>"$dir/.lock"
  flock 9 # one builder at a time; the others wait and find the tarball
  if [ ! -s "$tar" ]; then
    command -v mmdebstrap >/dev/null || die "mmdebstrap missing (bash scripts/apt-install.sh mmdebstrap)"
    [ "$(id -u)" -eq 0 ] || die "building the stock rootfs needs root (mmdebstrap)"
    t0=$(date +%s)
    log "building the stock Debian 12 rootfs with mmdebstrap into $dir (once, 0.5-1.5 minutes)"
    work="$(mktemp -d)"
    trap 'rm -rf "$work"' EXIT
    build_rootfs "$work/rootfs.tar" "$work"
    mv "$work/rootfs.tar" "$tar"
    # rootfs tarballs of earlier recipes
    find "$CACHE/vm-images" -mindepth 1 -maxdepth 1 -type d -regextype egrep -regex '.*/[0-9a-f]{16}' \
      ! -name "$(basename "$dir")" -exec rm -rf {} +
    log "rootfs built in $(( $(date +%s) - t0 )) s ($(du -m "$tar" | cut -f1) MB)"
  fi
  [ "$(image_key "$STOCK_TAG")" = "$key" ] && return 0
  local changes=()
  for c in "${IMPORT_CHANGES[@]}" "LABEL gitspaces.recipe=$key"; do changes+=(--change "$c"); done
  local old
  old="$(docker image inspect -f '{{.Id}}' "$STOCK_TAG" 2>/dev/null || true)"
  docker import "${changes[@]}" "$tar" "$STOCK_TAG" >/dev/null
  drop_image "$old"
}

# The image a tag named before it was moved, unless something still uses it.
drop_image() { [ -z "$1" ] || docker rmi "$1" >/dev/null 2>&1 || true; }

baked() {
  local bundle="" code_server="" no_docker=""
  while [ $# -gt 0 ]; do
    case "$1" in
      --bundle) bundle="$2"; shift 2 ;;
      --code-server) code_server="$2"; shift 2 ;;
      --no-docker) no_docker=1; shift ;;
      --tag) BAKED_TAG="$2"; shift 2 ;;
      *) die "baked: unknown argument $1" ;;
    esac
  done
  [ -f "$bundle" ] || die "baked: --bundle FILE (an agent bundle tarball) is required"
  bundle="$(cd "$(dirname "$bundle")" && pwd)/$(basename "$bundle")"
  stock
  local key args=() mounts=() name
  key="$( {
    image_key "$STOCK_TAG"; sha256sum <"$root/images/bake.sh"; sha256sum <"$bundle"; echo "docker=${no_docker:-yes}"
    if [ -n "$code_server" ]; then (cd "$code_server" && find . -type f -printf '%P %s %T@\n' | sort | sha256sum); fi
  } | sha256sum | cut -c1-16)"
  [ "$(image_key "$BAKED_TAG")" = "$key" ] && return 0
  mounts=(-v "$root/images/bake.sh:/tmp/bake/bake.sh:ro" -v "$bundle:/tmp/bake/$(basename "$bundle"):ro")
  args=(--bundle "/tmp/bake/$(basename "$bundle")")
  if [ -n "$code_server" ]; then
    mounts+=(-v "$(cd "$code_server" && pwd):/tmp/bake/code-server:ro")
    args+=(--code-server /tmp/bake/code-server)
  fi
  [ -n "$no_docker" ] && args+=(--no-docker)
  name="gitspaces-bake-$$"
  exec 8>"$CACHE/vm-images/.bake.lock"
  flock 8 # one bake at a time (they share the log)
  log "baking $BAKED_TAG (images/bake.sh ${args[*]})"
  docker rm -f "$name" >/dev/null 2>&1 || true
  if ! docker run --name "$name" --label gitspaces.test=bake "${mounts[@]}" "$STOCK_TAG" \
      bash /tmp/bake/bake.sh "${args[@]}" >"$CACHE/vm-images/bake.log" 2>&1; then
    docker rm -f "$name" >/dev/null 2>&1 || true
    tail -n 30 "$CACHE/vm-images/bake.log" >&2
    die "images/bake.sh failed inside $STOCK_TAG (log: $CACHE/vm-images/bake.log)"
  fi
  local old
  old="$(docker image inspect -f '{{.Id}}' "$BAKED_TAG" 2>/dev/null || true)"
  docker commit --change 'CMD ["/sbin/init"]' --change "LABEL gitspaces.recipe=$key" "$name" "$BAKED_TAG" >/dev/null
  docker rm "$name" >/dev/null
  drop_image "$old"
}

case "${1:-}" in
  stock) stock; echo "$STOCK_TAG" ;;
  baked) shift; mkdir -p "$CACHE/vm-images"; baked "$@"; echo "$BAKED_TAG" ;;
  *) die "usage: $0 stock | baked --bundle FILE [--code-server DIR] [--no-docker] [--tag TAG]" ;;
esac
