#!/usr/bin/env bash
# Everything the test suites need besides npm packages, installed once: Debian's chromium (browser
# tests) and lua5.1 (the Argo CD health checks run in Lua 5.1, as Argo CD's interpreter is), the
# kube-apiserver/etcd/kubectl binaries and helm (built from the Go module proxy into
# $GITSPACES_CACHE), and code-server for the browser-IDE tests (npm, into the cache). Quiet when all
# is there.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/apt-install.sh chromium lua5.1 docker.io docker-compose docker-registry mmdebstrap busybox-static
bash scripts/build-envtest.sh >/dev/null
bash scripts/fetch-helm.sh >/dev/null
bash scripts/fetch-code-server.sh >/dev/null
