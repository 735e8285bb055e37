#!/usr/bin/env bash
# Builds the test cluster's binaries (etcd, kube-apiserver, kube-controller-manager, kubectl) from the
# Go module proxy, once, into a cache outside the repo. Later runs find them and return at once.
#
# Why a wrapper module: k8s.io/kubernetes' go.mod replaces its k8s.io/* staging modules with local
# paths, so `go install k8s.io/kubernetes/cmd/kube-apiserver@v…` is refused. A wrapper that requires
# k8s.io/kubernetes and replaces each staging module with its published v0.x twin builds fine.
set -euo pipefail

K8S_VERSION="${K8S_VERSION:-1.34.4}"
ETCD_VERSION="${ETCD_VERSION:-3.6.5}"
CACHE="${GITSPACES_CACHE:-$HOME/.cache/gitspaces}"
OUT="$CACHE/envtest/v$K8S_VERSION-etcd$ETCD_VERSION"
BINS=(etcd kube-apiserver kube-controller-manager kubectl)

have_all() { for b in "${BINS[@]}"; do [ -x "$OUT/bin/$b" ] || return 1; done; }
if have_all; then echo "$OUT/bin"; exit 0; fi

command -v go >/dev/null || { echo "build-envtest: Go is required (apt-get install golang or see README)" >&2; exit 1; }
mkdir -p "$OUT"
# One builder at a time: parallel test runs on a cold machine wait for the first build.
exec 9>"$OUT/.lock"
flock 9
if have_all; then echo "$OUT/bin"; exit 0; fi

work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT
log() { echo "build-envtest: $*" >&2; }
start=$(date +%s)

# --- etcd -----------------------------------------------------------------------------------------
if [ ! -x "$OUT/bin/etcd" ]; then
  log "building etcd v$ETCD_VERSION (about 30 s cold)"
  mkdir -p "$work/etcd" && cd "$work/etcd"
  cat >go.mod <<GOMOD
module gitspaces.dev/envtest/etcd

go 1.24

require go.etcd.io/etcd/server/v3 v$ETCD_VERSION

replace (
	go.etcd.io/etcd/api/v3 => go.etcd.io/etcd/api/v3 v$ETCD_VERSION
	go.etcd.io/etcd/client/pkg/v3 => go.etcd.io/etcd/client/pkg/v3 v$ETCD_VERSION
	go.etcd.io/etcd/client/v3 => go.etcd.io/etcd/client/v3 v$ETCD_VERSION
	go.etcd.io/etcd/pkg/v3 => go.etcd.io/etcd/pkg/v3 v$ETCD_VERSION
)
GOMOD
  printf '//go:build tools\n\npackage tools\n\nimport _ "go.etcd.io/etcd/server/v3"\n' >tools.go
  go mod tidy >&2
  go build -o "$work/etcd-bin" -ldflags "-s -w" go.etcd.io/etcd/server/v3
  mkdir -p "$OUT/bin" && mv "$work/etcd-bin" "$OUT/bin/etcd"
fi

# --- kubernetes -----------------------------------------------------------------------------------
log "building kube-apiserver, kube-controller-manager, kubectl v$K8S_VERSION (about 8 min cold on 2 cores)"
mkdir -p "$work/k8s" && cd "$work/k8s"
gomod="$(go mod download -json "k8s.io/kubernetes@v$K8S_VERSION" | sed -n 's/.*"GoMod": "\(.*\)",*/\1/p')"
[ -f "$gomod" ] || { log "could not download k8s.io/kubernetes@v$K8S_VERSION"; exit 1; }
minor="${K8S_VERSION#*.}"; minor="${minor%%.*}"
{
  echo "module gitspaces.dev/envtest/k8s"
  echo
  echo "go 1.24"
  echo
  echo "require k8s.io/kubernetes v$K8S_VERSION"
  echo
  echo "replace ("
  # every `k8s.io/x => ./staging/src/k8s.io/x` becomes `k8s.io/x => k8s.io/x v0.<minor>.<patch>`
  grep -E '^\s*k8s\.io/[^ ]+ => \./staging/src/' "$gomod" | awk -v v="v0.${K8S_VERSION#*.}" '{print "\t" $1 " => " $1 " " v}'
  echo ")"
} >go.mod
cat >tools.go <<'GO'
//go:build tools

package tools

import (
	_ "k8s.io/kubernetes/cmd/kube-apiserver"
	_ "k8s.io/kubernetes/cmd/kube-controller-manager"
	_ "k8s.io/kubernetes/cmd/kubectl"
)
GO
go mod tidy >&2
ld="-s -w -X k8s.io/component-base/version.gitVersion=v$K8S_VERSION -X k8s.io/component-base/version.gitMajor=1 -X k8s.io/component-base/version.gitMinor=$minor"
ld="$ld -X k8s.io/client-go/pkg/version.gitVersion=v$K8S_VERSION -X k8s.io/client-go/pkg/version.gitMajor=1 -X k8s.io/client-go/pkg/version.gitMinor=$minor"
mkdir -p "$work/out"
go build -o "$work/out/" -ldflags "$ld" \
  k8s.io/kubernetes/cmd/kube-apiserver k8s.io/kubernetes/cmd/kube-controller-manager k8s.io/kubernetes/cmd/kubectl
mkdir -p "$OUT/bin"
for b in kube-apiserver kube-controller-manager kubectl; do mv "$work/out/$b" "$OUT/bin/$b"; done
log "done in $(( $(date +%s) - start )) s"
echo "$OUT/bin"
