#!/usr/bin/env bash
# Builds the pinned control-plane and chart tools from the Go module proxy into the cache:
# etcd (wrapper main over etcdmain), kube-apiserver, kube-controller-manager, kubectl and the node's
# kubelet, kube-proxy and kube-scheduler (wrapper module over k8s.io/kubernetes with every staging
# module replaced by its published version), helm, kube-linter, and the test node's kube-router
# (NetworkPolicy enforcer) and CoreDNS. A build is skipped when the stamp for its pinned version is already there, so a
# warm cache costs seconds. Prints per-tool timings; any failure names what is missing and exits 1.
set -euo pipefail

here=$(cd "$(dirname "$0")" && pwd)
source "$here/versions.env"
cache=${ENCLAVE_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/enclave}
bin="$cache/bin"
mkdir -p "$bin"

die() { echo "build-tools: $*" >&2; exit 1; }
export GOFLAGS=-mod=mod CGO_ENABLED=0 GOTOOLCHAIN=local

# Checked only when something must be built, so a warm cache needs neither Go nor the network.
go_checked=false
need_go() {
  $go_checked && return 0
  # The official tarball's place, in case it is installed but not on this shell's PATH.
  command -v go >/dev/null || { [ -x /usr/local/go/bin/go ] && export PATH="$PATH:/usr/local/go/bin"; } || true
  command -v go >/dev/null || die "Go is not installed (need Go >= 1.25.5 on PATH to build the control plane) — install it, then re-run"
  local v; v=$(go env GOVERSION); v=${v#go}
  local major=${v%%.*} rest=${v#*.}; local minor=${rest%%.*}
  if [ "$major" -lt 1 ] || { [ "$major" -eq 1 ] && [ "$minor" -lt 25 ]; }; then
    die "Go $v is too old (need >= 1.25.5 for Kubernetes $KUBE_VERSION) — install a newer Go, then re-run"
  fi
  # One cheap lookup tells "proxy unreachable" apart from a genuine build failure.
  timeout 60 go list -m -json "go.etcd.io/etcd/server/v3@$ETCD_VERSION" >/dev/null 2>&1 \
    || die "the Go module proxy ($(go env GOPROXY)) is unreachable or refuses go.etcd.io/etcd/server/v3@$ETCD_VERSION — check network/GOPROXY, then re-run"
  go_checked=true
}

# stamp NAME VERSION: true when NAME was already built at VERSION.
fresh() { [ -x "$bin/$1" ] && [ "$(cat "$bin/.$1.version" 2>/dev/null)" = "$2" ]; }
stamp() { echo "$2" > "$bin/.$1.version"; }
timed() { local t0=$SECONDS; "$@"; echo "build-tools: $1 took $((SECONDS - t0))s"; }

build_etcd() {
  fresh etcd "$ETCD_VERSION" && return 0
  need_go
  local w="$cache/src/etcd"; rm -rf "$w"; mkdir -p "$w"
  sed "s/@ETCD_VERSION@/$ETCD_VERSION/" "$here/go/etcd/go.mod.in" > "$w/go.mod"
  cp "$here/go/etcd/main.go" "$w/"
  (cd "$w" && go mod tidy && go build -trimpath \
    -ldflags "-s -w -X go.etcd.io/etcd/api/v3/version.GitSHA=$ETCD_VERSION" -o "$bin/etcd" .) \
    || die "etcd $ETCD_VERSION failed to build (is the Go module proxy reachable?)"
  stamp etcd "$ETCD_VERSION"
}

build_kube() {
  local bins=(kube-apiserver kube-controller-manager kubectl kubelet kube-proxy kube-scheduler) b all=true
  for b in "${bins[@]}"; do fresh "$b" "$KUBE_VERSION" || all=false; done
  $all && return 0
  need_go
  local w="$cache/src/kube" staging="v0.${KUBE_VERSION#v1.}"
  rm -rf "$w"; mkdir -p "$w"
  sed -e "s/@KUBE_VERSION@/$KUBE_VERSION/" -e "s/@STAGING_VERSION@/$staging/g" "$here/go/kube/go.mod.in" > "$w/go.mod"
  local minor; minor=$(echo "$KUBE_VERSION" | cut -d. -f2)
  local v="-X k8s.io/component-base/version.gitVersion=$KUBE_VERSION -X k8s.io/component-base/version.gitMajor=1"
  v="$v -X k8s.io/component-base/version.gitMinor=$minor -X k8s.io/component-base/version.gitTreeState=clean"
  v="$v -X k8s.io/client-go/pkg/version.gitVersion=$KUBE_VERSION -X k8s.io/client-go/pkg/version.gitMajor=1"
  v="$v -X k8s.io/client-go/pkg/version.gitMinor=$minor -X k8s.io/client-go/pkg/version.gitTreeState=clean"
  (cd "$w" && go mod tidy && go build -trimpath -ldflags "-s -w $v" -o "$bin/" \
      "${bins[@]/#/k8s.io/kubernetes/cmd/}") \
    || die "kubernetes $KUBE_VERSION failed to build (is the Go module proxy reachable?)"
  for b in "${bins[@]}"; do stamp "$b" "$KUBE_VERSION"; done
}

build_helm() {
  fresh helm "$HELM_VERSION" && return 0
  need_go
  local minor; minor=$(echo "$KUBE_VERSION" | cut -d. -f2)
  GOBIN="$bin" go install -trimpath -ldflags "-s -w -X helm.sh/helm/v3/internal/version.version=$HELM_VERSION \
    -X helm.sh/helm/v3/pkg/chartutil.k8sVersionMajor=1 -X helm.sh/helm/v3/pkg/chartutil.k8sVersionMinor=$minor \
    -X helm.sh/helm/v3/pkg/lint/rules.k8sVersionMajor=1 -X helm.sh/helm/v3/pkg/lint/rules.k8sVersionMinor=$minor" \
    "helm.sh/helm/v3/cmd/helm@$HELM_VERSION" || die "helm $HELM_VERSION failed to build (is the Go module proxy reachable?)"
  stamp helm "$HELM_VERSION"
}

build_kube_linter() {
  fresh kube-linter "$KUBE_LINTER_VERSION" && return 0
  need_go
  # golang.stackrox.io is refused by the module proxy; the wrapper replaces it by the GitHub path.
  local w="$cache/src/kube-linter"; rm -rf "$w"; mkdir -p "$w"
  sed "s/@KUBE_LINTER_VERSION@/$KUBE_LINTER_VERSION/g" "$here/go/kube-linter/go.mod.in" > "$w/go.mod"
  (cd "$w" && go mod tidy && go build -trimpath \
      -ldflags "-s -w -X golang.stackrox.io/kube-linter/internal/version.version=$KUBE_LINTER_VERSION" \
      -o "$bin/kube-linter" golang.stackrox.io/kube-linter/cmd/kube-linter) \
    || die "kube-linter $KUBE_LINTER_VERSION failed to build (is the Go module proxy reachable? github.com/stackrox/kube-linter is used)"
  stamp kube-linter "$KUBE_LINTER_VERSION"
}

# The test node's NetworkPolicy enforcer. v2.1.0 is the only version the module proxy serves and
# carries published security advisories (docs/test-node.md): acceptable for a throwaway local test
# node whose pods have no route off the machine, never for a real cluster.
build_kube_router() {
  fresh kube-router "$KUBE_ROUTER_VERSION" && return 0
  need_go
  GOBIN="$bin" go install -trimpath -ldflags "-s -w" \
    "github.com/cloudnativelabs/kube-router/v2/cmd/kube-router@$KUBE_ROUTER_VERSION" \
    || die "kube-router $KUBE_ROUTER_VERSION failed to build (is the Go module proxy reachable?)"
  stamp kube-router "$KUBE_ROUTER_VERSION"
}

# The test node's cluster DNS (Service names resolve in pods): a wrapper main with only the plugins
# the node's Corefile uses (scripts/go/coredns/main.go).
build_coredns() {
  fresh coredns "$COREDNS_VERSION" && return 0
  need_go
  local w="$cache/src/coredns"; rm -rf "$w"; mkdir -p "$w"
  sed "s/@COREDNS_VERSION@/$COREDNS_VERSION/" "$here/go/coredns/go.mod.in" > "$w/go.mod"
  cp "$here/go/coredns/main.go" "$w/"
  (cd "$w" && go mod tidy && go build -trimpath -ldflags "-s -w" -o "$bin/coredns" .) \
    || die "coredns $COREDNS_VERSION failed to build (is the Go module proxy reachable?)"
  stamp coredns "$COREDNS_VERSION"
}

only=${1:-all}
case "$only" in
  all) timed build_etcd; timed build_kube; timed build_helm; timed build_kube_linter
       timed build_kube_router; timed build_coredns ;;
  etcd|kube|helm|kube_linter|kube_router|coredns) timed "build_$only" ;;
  *) die "unknown target '$only' (all|etcd|kube|helm|kube_linter|kube_router|coredns)" ;;
esac
echo "build-tools: binaries in $bin ($(du -sh "$bin" | cut -f1))"
