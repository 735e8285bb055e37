#!/usr/bin/env bash
# The helm CLI for the chart tests: built once from its Go module (the Go module proxy is reachable,
# get.helm.sh is not) into $GITSPACES_CACHE and reused. Prints the binary path.
set -euo pipefail
version="v3.22.0"
cache="${GITSPACES_CACHE:-$HOME/.cache/gitspaces}/helm-$version"
bin="$cache/helm"
if [ ! -x "$bin" ]; then
  mkdir -p "$cache"
  echo "building helm $version into $cache (once, a few minutes)" >&2
  GOBIN="$cache" GOFLAGS=-trimpath CGO_ENABLED=0 go install "helm.sh/helm/v3/cmd/helm@$version" >&2
fi
echo "$bin"
