#!/usr/bin/env bash
# Builds the real kube-apiserver, kubeadm and etcd from source, through the Go module proxy, into
# target/upstream/<version>/bin/, the way upstream builds them (static, -trimpath, version
# ldflags). Reuses what is there. Prints how long it took.
#
# usage: tests/upstream/build.sh [KUBERNETES_VERSION]    (default v1.37.2, or $KUBERNETES_VERSION;
#        the second pinned version is v1.34.4). etcd pairs by minor: v3.7.3 for 1.37 (whose
#        apiserver uses the 3.7 client), v3.6.16 before; ETCD_VERSION overrides.
set -euo pipefail
cd "$(dirname "$0")/../.."
k8s=${1:-${KUBERNETES_VERSION:-v1.37.2}}
case $k8s in
  v1.3[4-6].*) etcd_default=v3.6.16 ;;
  *) etcd_default=v3.7.3 ;;
esac
etcd=${ETCD_VERSION:-$etcd_default}
out=$PWD/target/upstream/$k8s
bin=$out/bin
started=$(date +%s)

command -v go >/dev/null || { echo "build.sh: needs Go (the Go module proxy builds these from source)" >&2; exit 2; }

if [ -x "$bin/kube-apiserver" ] && [ -x "$bin/kubeadm" ] && [ -x "$bin/etcd" ] &&
  "$bin/kube-apiserver" --version 2>/dev/null | grep -qx "Kubernetes $k8s"; then
  echo "upstream $k8s: reusing $bin"
  exit 0
fi
mkdir -p "$bin" "$out/src/kubernetes" "$out/src/etcd"
export CGO_ENABLED=0 GOFLAGS=-mod=mod

# k8s.io/kubernetes replaces its staging modules with ./staging/src/... at v0.0.0; replace lines
# count only in the main module, so the wrapper replaces each with its published v0.<minor>.<patch>,
# taken from the pinned version's own go.mod (never a hand-kept list).
gomod=$(go mod download -json "k8s.io/kubernetes@$k8s" | sed -n 's/.*"GoMod": "\(.*\)".*/\1/p')
[ -f "$gomod" ] || { echo "build.sh: cannot download k8s.io/kubernetes@$k8s" >&2; exit 1; }
staging_version=v0.${k8s#v1.}
{
  echo "module kubeadm-recover/upstream/kubernetes"
  grep -E '^go ' "$gomod"
  grep -E '^godebug ' "$gomod" || true
  echo "require k8s.io/kubernetes $k8s"
  echo "replace ("
  sed -n 's#^\s*\(k8s.io/[a-z0-9-]*\) => ./staging/src/k8s.io/.*#\t\1 => \1 '"$staging_version"'#p' "$gomod"
  echo ")"
} > "$out/src/kubernetes/go.mod"
printf 'package upstream\n\nimport (\n\t_ "k8s.io/kubernetes/cmd/kube-apiserver/app"\n\t_ "k8s.io/kubernetes/cmd/kubeadm/app"\n)\n' > "$out/src/kubernetes/deps.go"

minor=${k8s#v1.}
minor=${minor%%.*}
ldflags="-s -w"
for pkg in k8s.io/component-base/version k8s.io/client-go/pkg/version; do
  ldflags+=" -X $pkg.gitVersion=$k8s -X $pkg.gitMajor=1 -X $pkg.gitMinor=$minor"
  ldflags+=" -X $pkg.gitCommit=0000000000000000000000000000000000000000 -X $pkg.gitTreeState=clean"
  ldflags+=" -X $pkg.buildDate=$(date -u +%Y-%m-%dT%H:%M:%SZ)"
done
(
  cd "$out/src/kubernetes"
  go mod tidy >/dev/null
  for cmd in kube-apiserver kubeadm; do
    go build -trimpath -ldflags "$ldflags" -o "$bin/$cmd" "k8s.io/kubernetes/cmd/$cmd"
  done
)

# etcd: a wrapper main, exactly what upstream's server/main.go is.
cat > "$out/src/etcd/go.mod" <<EOF
module kubeadm-recover/upstream/etcd

go 1.26

require go.etcd.io/etcd/server/v3 $etcd
EOF
cat > "$out/src/etcd/main.go" <<'EOF'
package main

import (
	"os"

	"go.etcd.io/etcd/server/v3/etcdmain"
)

func main() { etcdmain.Main(os.Args) }
EOF
(
  cd "$out/src/etcd"
  go mod tidy >/dev/null
  go build -trimpath -ldflags "-s -w" -o "$bin/etcd" .
)

"$bin/kube-apiserver" --version
"$bin/kubeadm" version -o short
# (not `| head -1`: under pipefail, etcd dying of SIGPIPE would fail the build)
etcd_version=$("$bin/etcd" --version)
echo "${etcd_version%%$'\n'*}"
echo "upstream $k8s + etcd $etcd built into $bin in $(($(date +%s) - started)) s"
