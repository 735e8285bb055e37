#!/usr/bin/env bash
# Everything the test suites need besides npm packages, installed once: Debian's chromium (browser
# tests) and lua5.1 (the Argo CD health checks run in Lua 5.1, as Argo CD's interpreter is); Docker,
# docker-compose, a registry and mmdebstrap (dev containers, VM images); busybox-static (an image
# without glibc); OpenSSH's sshd and sftp-server and rsync (the SSH features' tests); the
# kube-apiserver/etcd/kubectl binaries and helm (built from the Go module proxy into
# $GITSPACES_CACHE), and code-server for the browser-IDE tests (npm, into the cache). Quiet when all
# is there.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/apt-install.sh chromium lua5.1 docker.io docker-compose docker-registry mmdebstrap busybox-static openssh-server openssh-sftp-server rsync
bash scripts/build-envtest.sh >/dev/null
bash scripts/fetch-helm.sh >/dev/null
bash scripts/fetch-code-server.sh >/dev/null
