#!/usr/bin/env bash
# shellcheck disable=SC2317 # functions called by flow.sh and by traps
# The break-glass rehearsal on real kind clusters: the tool copied into a control-plane node and
# run there as root with no --root, the way an operator runs it over SSH (here `docker exec`),
# every step checked on the node; then the Ansible playbooks over SSH against every
# control-plane node. The steps are tests/rehearsal/flow.sh (the Vagrant rehearsal runs the same).
#
#   bash tests/rehearsal/kind.sh          # both clusters (about 10 min)
#   KIND_REHEARSAL=single bash tests/rehearsal/kind.sh   # or multi
#
# Two clusters, one after the other:
#   single  one control-plane node: status, admin.conf expired and regenerated, extend-tokens
#           enable with proof, revert, a change the new apiserver rejects rolled back, guide at a
#           pseudo-terminal, certs check, the journal;
#   multi   two control-plane nodes behind kind's load balancer: the playbooks (status,
#           regenerate-admin, extend-tokens enabled, revert) one node at a time, and a play that
#           stops at the first node that fails, leaving the others untouched.
#
# Where it gets what it needs:
#   - a Docker engine: the one DOCKER_HOST (or the default socket) reaches; where none answers, an
#     engine of its own (tests/rehearsal/engine.sh: root, overlayfs; stopped at the end);
#   - kind $kind_version (target/kind/bin, built with Go through the module proxy when missing);
#   - the node image: KIND_NODE_IMAGE (e.g. kindest/node:v1.37.0, the official one, on a laptop
#     with a registry), else one built here from the real-node tier's binaries and images
#     (tests/rehearsal/node-image.sh; for machines with no registry);
#   - the static binary: target/x86_64-unknown-linux-musl/release/kubeadm-recover
#     (tests/static-binary.sh builds it) or KUBEADM_RECOVER_BINARY;
#   - ansible-playbook and ssh for the playbooks (tests/run.sh puts ansible-core in target/test-tools).
# It refuses (exit 3, nothing created) where it cannot run, and never touches a cluster it did
# not create. It deletes its clusters and stops what it started at the end, also on failure or
# Ctrl-C (KEEP_CLUSTER=1 keeps the clusters for a look). Each step's log: target/kind/logs/.
set -euo pipefail

here=$(cd "$(dirname "$0")" && pwd)
repo=$(cd "$here/../.." && pwd)
kind_version=v0.33.0
version=${KUBERNETES_VERSION:-v1.37.2}
binary=${KUBEADM_RECOVER_BINARY:-$repo/target/x86_64-unknown-linux-musl/release/kubeadm-recover}
prefix=${KIND_CLUSTER_NAME:-kubeadm-recover}
mode=${KIND_REHEARSAL:-all}
reason="kind rehearsal $(date -u +%Y%m%dT%H%M%SZ)"
# Whatever the user has first; this checkout's builds and tools after.
export PATH="$PATH:$repo/target/kind/bin:$repo/target/test-tools/bin:/usr/local/go/bin:/usr/sbin:/sbin"

# Exit 3, like the tool's own preflight refusals: nothing was created.
refuse() {
  echo "kind.sh: refused: $1" >&2
  echo "  what to do: $2" >&2
  exit 3
}

case $mode in
  all) clusters=(single multi) ;;
  single | multi) clusters=("$mode") ;;
  *) refuse "KIND_REHEARSAL=$mode" "set it to single, multi or all (the default)" ;;
esac
for tool in python3 ssh ssh-keygen; do
  command -v "$tool" >/dev/null || refuse "$tool is not installed" "install it (the rehearsal checks JSON with python3 and reaches the nodes' sshd for Ansible)"
done
command -v docker >/dev/null ||
  refuse "docker (the client) is not installed; kind runs its nodes as Docker containers" \
    "install Docker (or Debian's docker.io), or rehearse on the simulator: kubeadm-recover rehearse"
[ -x "$binary" ] ||
  refuse "no static kubeadm-recover at $binary" \
    "build it: cargo build --release --target x86_64-unknown-linux-musl (or set KUBEADM_RECOVER_BINARY)"
own_engine=""
if ! docker info >/dev/null 2>&1; then
  [ "$(id -u)" = 0 ] ||
    refuse "no Docker engine answers, and starting one of its own needs root" \
      "start Docker (systemctl start docker) or run this as root"
  grep -qw overlay "${PROC_FILESYSTEMS:-/proc/filesystems}" || modprobe overlay 2>/dev/null ||
    refuse "this kernel has no overlayfs; the rehearsal's engine stores images with overlay2" \
      "run it where overlayfs is available, or on a machine with a running Docker engine"
  command -v dockerd >/dev/null ||
    refuse "no Docker engine answers and dockerd is not installed" "install docker.io (tests/run.sh does), or start Docker"
  own_engine=1
fi
if ! command -v kind >/dev/null; then
  command -v go >/dev/null || refuse "kind is not installed, and Go is not there to build it" \
    "install kind $kind_version (go install sigs.k8s.io/kind@$kind_version)"
  # Into this checkout's target/ (a cache, like the other tiers' builds).
  mkdir -p "$repo/target/kind/bin"
  GOBIN=$repo/target/kind/bin CGO_ENABLED=0 go install "sigs.k8s.io/kind@$kind_version" >"$repo/target/kind/kind-build.log" 2>&1 ||
    { echo "kind.sh: building kind failed; see $repo/target/kind/kind-build.log" >&2; exit 1; }
fi
kind_found=$(kind version)
grep -q "$kind_version" <<<"$kind_found" ||
  echo "kind.sh: warning: kind is $kind_found, the rehearsal is written for $kind_version" >&2
# On an engine that is not the rehearsal's own, a cluster of one of its names is someone's.
if [ -z "$own_engine" ]; then
  for cluster in "${clusters[@]}"; do
    if kind get clusters 2>/dev/null | grep -qx "$prefix-$cluster"; then
      refuse "a kind cluster named $prefix-$cluster exists already; this script deletes the clusters it creates, so it will not use that one" \
        "delete it (kind delete cluster --name $prefix-$cluster), or set KIND_CLUSTER_NAME"
    fi
  done
fi

logs=$repo/target/kind/logs/$(date -u +%Y%m%dT%H%M%SZ)
mkdir -p "$logs"
work=$(mktemp -d)
chmod 700 "$work"
# The cluster this run created and has not deleted yet (one at a time).
current=""
cleanup() {
  local status=$?
  trap - EXIT INT TERM
  # A step still running (interrupted): stopped before its cluster goes.
  local job
  for job in $(jobs -p); do
    kill "$job" 2>/dev/null || true
  done
  wait 2>/dev/null || true
  if [ -n "${KEEP_CLUSTER:-}" ]; then
    echo "kept: kind cluster ${current:-none} (kind delete cluster --name NAME)${own_engine:+, and the engine: DOCKER_HOST=$DOCKER_HOST; stop it with tests/rehearsal/engine.sh down}"
  else
    if [ -n "$current" ]; then
      [ "$status" = 0 ] || kind export logs --name "$current" "$logs/kind-$current" >/dev/null 2>&1 || true
      kind delete cluster --name "$current" >/dev/null 2>&1 || echo "kind.sh: could not delete cluster $current" >&2
      remove_networks "$current" 2>/dev/null || echo "kind.sh: could not remove the network of $current" >&2
    fi
    if [ -n "$own_engine" ]; then
      bash "$here/engine.sh" down >"$logs/engine-down.log" 2>&1 || {
        echo "kind.sh: the engine left something behind; see $logs/engine-down.log" >&2
        status=1
      }
    fi
  fi
  rm -rf "$work"
  [ "$status" != 130 ] || echo "kind rehearsal interrupted: its clusters deleted${own_engine:+, its engine stopped}; logs in $logs" >&2
  exit "$status"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

started=$SECONDS
echo "kind rehearsal ($kind_version, Kubernetes $version); logs in $logs"
if [ -n "$own_engine" ]; then
  DOCKER_HOST=$(bash "$here/engine.sh" up 2>"$logs/engine-up.log") ||
    # (engine.sh up stops what it started when it fails; a refusal leaves an engine running
    # there, another run's perhaps, alone.)
    { own_engine=""; echo "kind.sh: the engine did not start; see $logs/engine-up.log" >&2; tail -n 5 "$logs/engine-up.log" >&2; exit 1; }
  export DOCKER_HOST
  echo "  a Docker engine of its own (tests/rehearsal/engine.sh), at $DOCKER_HOST"
fi

if [ -n "${KIND_NODE_IMAGE:-}" ]; then
  node_image=$KIND_NODE_IMAGE
else
  images=$(bash "$here/node-image.sh" "$kind_version" 2>"$logs/node-image.log") ||
    { echo "kind.sh: building the node image failed; see $logs/node-image.log" >&2; tail -n 5 "$logs/node-image.log" >&2; exit 1; }
  node_image=$(head -n1 <<<"$images")
  echo "  node image $node_image, built here (tests/rehearsal/node-image.sh)"
fi
ssh-keygen -q -t ed25519 -N '' -f "$work/id" -C kind-rehearsal

# --- How flow.sh reaches the nodes: docker exec, docker cp; Ansible over SSH. ----------------
cluster_nodes=()
node_names() { printf '%s\n' "${cluster_nodes[@]}"; }
on_node() {
  local node=$1
  shift
  docker exec -i "$node" "$@"
}
copy_to_node() {
  docker cp "$1" "$2:$3"
  # docker cp keeps the host user's uid; on the node it is root's, as an operator installs it.
  docker exec "$2" sh -c "chown root:root '$3' && chmod 0755 '$3'"
}
terminal_on_node() {
  local node=$1
  shift
  printf '%s\n' docker exec -it "$node" "$@"
}
stage_rejection() {
  local archives=$repo/target/realnode/images/$version archive
  case $2 in
    on) archive=$archives/kube-apiserver-reject.tar ;;
    off) archive=$archives/kube-apiserver.tar ;;
  esac
  if [ ! -f "$archive" ]; then
    echo "no $archive (tests/realnode/node.sh images builds it)"
    return 2
  fi
  docker exec -i "$1" ctr --namespace=k8s.io images import - <"$archive"
}
inventory() { echo "$work/inventory.ini"; }
write_inventory() {
  local node address
  {
    echo "[control_plane]"
    for node in "${cluster_nodes[@]}"; do
      address=$(docker inspect -f '{{range .NetworkSettings.Networks}}{{.IPAddress}}{{end}}' "$node")
      echo "$node ansible_host=$address"
    done
    echo
    echo "[control_plane:vars]"
    echo "ansible_user=root"
    echo "ansible_ssh_private_key_file=$work/id"
    echo "ansible_ssh_common_args='-o StrictHostKeyChecking=no -o UserKnownHostsFile=/dev/null -o LogLevel=ERROR'"
    echo "ansible_python_interpreter=/usr/bin/python3"
    echo "kubeadm_recover_become=false"
  } >"$work/inventory.ini"
}
# shellcheck source=tests/rehearsal/flow.sh
. "$here/flow.sh"

# --- The Vagrant provisioning scripts, on the multi cluster's nodes -------------------------
# The steps inside a Vagrant VM, proved where no VM boots (vagrant/README.md): the nodes are
# reset (`kubeadm reset`) and provisioned again by vagrant/provision/control-plane.sh (init on
# the first, join on the second, behind the same load balancer) and worker.sh, the join files
# carried from node to node as the synced folder carries them. common.sh is not run: it installs
# from pkgs.k8s.io and loads kernel modules, neither possible here; what it leaves (the vagrant
# user, forwarding on, the kubelet's --node-ip) is set as it would. The cgroup v1 patch and the
# ignored preflight checks (the CNI and kube-proxy images are not in the node image, the
# kernel's config is not readable) go through the scripts' own KUBEADM_EXTRA_ARGS.
# A container's address on a network (kind's own: "kind").
address_of() { docker inspect -f "{{(index .NetworkSettings.Networks \"$2\").IPAddress}}" "$1"; }
# The networks this run made (the private one), removed with their cluster.
remove_networks() {
  docker network ls -q --filter "label=io.kubeadm-recover.rehearsal=$1" | xargs -r docker network rm >/dev/null
}
# kubeadm prints the bootstrap token and the certificate key: never into a log.
redact() { sed -E 's/[a-z0-9]{6}\.[a-z0-9]{16}/<redacted token>/g; s/(--certificate-key) [^ ]+/\1 <redacted>/g; s/^[0-9a-f]{64}$/<redacted certificate key>/'; }
provision_as_vagrant() {
  local cluster=$1 node first second worker lb extra private
  first=${cluster_nodes[0]}
  second=${cluster_nodes[1]}
  worker=$cluster-worker
  lb=$(address_of "$cluster-external-load-balancer" kind):6443
  extra="--ignore-preflight-errors=ImagePull,SystemVerification"
  # Vagrant's private network: a second interface with no default route, the one the scripts are
  # given. kubeadm's own choice is the default route's (kind's network here, the NAT one in a
  # VM), so the joined control plane is on the private address only if the script passes it.
  private=$cluster-private
  docker network create --label "io.kubeadm-recover.rehearsal=$cluster" "$private" >/dev/null
  for node in "$first" "$second" "$worker"; do
    docker network connect "$private" "$node"
    docker exec "$node" kubeadm reset -f >/dev/null 2>&1
    docker exec "$node" sh -c 'id vagrant >/dev/null 2>&1 || useradd -m vagrant
      mkdir -p /kubeadm-recover/vagrant/provision
      sysctl -qw net.ipv4.ip_forward=1
      if [ ! -f /sys/fs/cgroup/cgroup.controllers ]; then
        mkdir -p /kubeadm-recover/patches
        echo "failCgroupV1: false" >/kubeadm-recover/patches/kubeletconfiguration+merge.yaml
      fi'
    docker exec "$node" sh -c "echo KUBELET_EXTRA_ARGS=--node-ip=$(address_of "$node" "$private") >/etc/default/kubelet"
    docker cp "$repo/vagrant/provision/." "$node:/kubeadm-recover/vagrant/provision/"
  done
  docker exec "$first" test -f /sys/fs/cgroup/cgroup.controllers ||
    extra="$extra --patches /kubeadm-recover/patches"
  docker exec -e KUBEADM_EXTRA_ARGS="$extra" -e CNI_MANIFEST=none "$first" \
    bash /kubeadm-recover/vagrant/provision/control-plane.sh init "$(address_of "$first" "$private")" "$lb" "${version#v}" 2>&1 | redact
  # The synced folder: cp1's join files on every other node.
  docker exec "$first" tar -C /kubeadm-recover/vagrant -cf - .cluster >"$work/cluster.tar"
  for node in "$second" "$worker"; do
    docker exec -i "$node" tar -C /kubeadm-recover/vagrant -xf - <"$work/cluster.tar"
  done
  rm -f "$work/cluster.tar"
  docker exec -e KUBEADM_EXTRA_ARGS="$extra" "$second" \
    bash /kubeadm-recover/vagrant/provision/control-plane.sh join "$(address_of "$second" "$private")" "$lb" "${version#v}" 2>&1 | redact
  docker exec -e KUBEADM_EXTRA_ARGS="$extra" "$worker" bash /kubeadm-recover/vagrant/provision/worker.sh 2>&1 | redact
  # What the VMs would show: every node Ready, the joined control plane on its private address,
  # the vagrant user's kubectl, and kubeadm-recover seeing both control-plane nodes.
  local admin=(kubectl --kubeconfig /etc/kubernetes/admin.conf) nodes planes
  docker exec "$first" "${admin[@]}" wait --for=condition=Ready nodes --all --timeout=180s
  docker exec "$first" "${admin[@]}" get nodes -o wide
  nodes=$(docker exec "$first" "${admin[@]}" get nodes --no-headers | wc -l)
  [ "$nodes" = 3 ] || fail "$nodes nodes joined, not 3"
  docker exec "$second" grep -q -- "--advertise-address=$(address_of "$second" "$private")\$" /etc/kubernetes/manifests/kube-apiserver.yaml ||
    fail "$second's apiserver does not advertise its private address"
  docker exec "$second" grep -q -- "--initial-advertise-peer-urls=https://$(address_of "$second" "$private"):2380\$" /etc/kubernetes/manifests/etcd.yaml ||
    fail "$second's etcd does not advertise its private address"
  docker exec "$first" su - vagrant -c 'kubectl get nodes' >/dev/null || fail "the vagrant user's kubectl does not work"
  planes=$(kr "$first" status -o json | json 'len(d["controlPlaneNodes"])')
  [ "$planes" = 2 ] || fail "kubeadm-recover status lists $planes control-plane nodes, not 2"
  detail "init on $first, $second joined on its private address, $worker joined: 3 nodes Ready; status lists 2 control planes"
}

# --- The clusters --------------------------------------------------------------------------
control_planes_of() {
  docker ps --filter "label=io.x-k8s.kind.cluster=$1" --filter label=io.x-k8s.kind.role=control-plane \
    --format '{{.Names}}' | sort
}
create_cluster() {
  local name=$1 config=$2 node
  if [ -n "${KIND_NODE_IMAGE:-}" ]; then
    # The official image has no CNI config of its own: kind's CNI (pulled) makes the nodes Ready.
    sed '/disableDefaultCNI: true/d' "$config" >"$work/$name.yaml"
    config=$work/$name.yaml
  fi
  kind create cluster --name "$name" --config "$config" --image "$node_image" \
    --kubeconfig "$work/$name.kubeconfig" --wait 180s
  for node in $(control_planes_of "$name"); do
    # Root's key for Ansible, as on a node reached over SSH.
    docker exec -i "$node" sh -c 'cat >/root/.ssh/authorized_keys && chmod 600 /root/.ssh/authorized_keys' <"$work/id.pub"
  done
  kubectl --kubeconfig "$work/$name.kubeconfig" get nodes
  detail "$(control_planes_of "$name" | wc -l) control-plane node(s) Ready: $(control_planes_of "$name" | tr '\n' ' ')"
}
delete_cluster() {
  kind delete cluster --name "$1"
  remove_networks "$1"
  detail "deleted"
}

status=0
for cluster in "${clusters[@]}"; do
  name=$prefix-$cluster
  echo
  echo "$name:"
  current=$name
  step "create the kind cluster ($cluster)" create_cluster "$name" "$here/kind-$cluster.yaml" || { status=1; break; }
  # The nodes, in this shell (a step runs in a subshell of its own).
  mapfile -t cluster_nodes < <(control_planes_of "$name")
  write_inventory
  step "copy the static binary in, as root" install_binary || { status=1; break; }
  case $cluster in
    single) rehearse_on_one_node || status=1 ;;
    multi)
      rehearse_the_playbooks &&
        step "the Vagrant provisioning scripts (nodes reset)" provision_as_vagrant "$name" || status=1
      ;;
  esac
  [ $status = 0 ] || break
  if [ -z "${KEEP_CLUSTER:-}" ]; then
    step "delete the cluster" delete_cluster "$name" || { status=1; break; }
    current=""
  fi
done
echo
if [ $status = 0 ]; then
  echo "kind rehearsal passed in $((SECONDS - started)) s."
else
  echo "kind rehearsal FAILED; logs in $logs"
fi
exit $status
