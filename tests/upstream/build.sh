#!/usr/bin/env bash
# Builds the real Kubernetes binaries from source, through the Go module proxy, into
# target/upstream/<version>/bin/, the way upstream builds them (static, -trimpath, version
# ldflags): kube-apiserver, kubeadm and etcd for the upstream tier; kubelet,
# kube-controller-manager, kube-scheduler, kubectl and crictl too for the real-node tier. ONE
# version serves every tier. Reuses what is there. Prints how long it took.
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
# crictl (sigs.k8s.io/cri-tools) pairs by minor too; v1.35/36 are not served, so those take v1.34.
case $k8s in
  v1.3[4-6].*) crictl_default=v1.34.0 ;;
  *) crictl_default=v1.37.0 ;;
esac
crictl=${CRICTL_VERSION:-$crictl_default}
kube_cmds=(kube-apiserver kubeadm kubelet kube-controller-manager kube-scheduler kubectl)
out=$PWD/target/upstream/$k8s
bin=$out/bin
started=$(date +%s)

command -v go >/dev/null || { echo "build.sh: needs Go (the Go module proxy builds these from source)" >&2; exit 2; }

# The version a built binary reports ("" when it is missing or reports none).
version_of() {
  case $1 in
    kubeadm) "$bin/kubeadm" version -o short 2>/dev/null ;;
    kubectl) "$bin/kubectl" version --client 2>/dev/null | sed -n 's/^Client Version: //p' ;;
    *) "$bin/$1" --version 2>/dev/null | sed -n 's/^Kubernetes //p' ;;
  esac
}
complete=1
for cmd in "${kube_cmds[@]}" etcd crictl; do
  [ -x "$bin/$cmd" ] || complete=""
done
if [ -n "$complete" ] && [ "$(version_of kube-apiserver)" = "$k8s" ] && [ "$(version_of kubelet)" = "$k8s" ]; then
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
{
  printf 'package upstream\n\nimport (\n'
  for cmd in kube-apiserver kubeadm kubelet kube-controller-manager kube-scheduler; do
    printf '\t_ "k8s.io/kubernetes/cmd/%s/app"\n' "$cmd"
  done
  printf '\t_ "k8s.io/kubectl/pkg/cmd"\n)\n'
} > "$out/src/kubernetes/deps.go"

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
  for cmd in "${kube_cmds[@]}"; do
    # (a binary already built for this version is kept: an interrupted build resumes)
    [ "$(version_of "$cmd")" = "$k8s" ] && continue
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

# crictl, the CRI client a real node's operator (and the tool's nudge) uses.
GOBIN=$bin go install -trimpath -ldflags "-s -w -X sigs.k8s.io/cri-tools/pkg/version.Version=$crictl" \
  "sigs.k8s.io/cri-tools/cmd/crictl@$crictl"

"$bin/kube-apiserver" --version
"$bin/kubeadm" version -o short
# (not `| head -1`: under pipefail, etcd dying of SIGPIPE would fail the build)
etcd_version=$("$bin/etcd" --version)
echo "${etcd_version%%$'\n'*}"
"$bin/kubelet" --version
"$bin/crictl" --version
echo "upstream $k8s + etcd $etcd + crictl $crictl built into $bin in $(($(date +%s) - started)) s"
