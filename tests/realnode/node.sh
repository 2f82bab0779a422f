#!/usr/bin/env bash
# The real-node tier's node: a real kubeadm control plane on this machine (real `kubeadm init`,
# the real kubelet, containerd and runc; static pods for etcd, kube-apiserver,
# kube-controller-manager and kube-scheduler), with nothing pulled and nothing left behind.
#
# usage: tests/realnode/node.sh up|down|check|can-run|images|reject-image on|off
#   up       refuses where a node (or a trace of one) exists, then brings one up (~30 s)
#   down     tears it down, then checks that nothing is left (exit 1 if something is)
#   check    says whether the machine is clean (exit 1 and what is left if not)
#   can-run  whether this machine has the means (root, overlayfs, cgroups)
#   images   builds the control-plane image archives (cached) and prints their paths (the kind
#            rehearsal's node image preloads the same ones)
#   reject-image on|off   the kube-apiserver image under the same tag becomes one that refuses
#            --service-account-extend-token-expiration=false (and is the real apiserver
#            otherwise), or the real one again
# Binaries: $KUBEADM_RECOVER_KUBE_BIN (default target/upstream/$KUBERNETES_VERSION/bin, from
# tests/upstream/build.sh). Needs root, overlayfs and cgroups. The facts behind each step are in
# ../shared/REALNODE.md of the project (and docs/fidelity.md).
set -euo pipefail
cd "$(dirname "$0")/../.."
repo=$PWD
version=${KUBERNETES_VERSION:-v1.37.2}
bin=${KUBEADM_RECOVER_KUBE_BIN:-$repo/target/upstream/$version/bin}
state=$repo/target/realnode
export PATH="$bin:$PATH:/usr/local/go/bin:/usr/sbin:/sbin"

# TEST-NET-2, on a veth pair of our own: nothing the node serves listens on the machine's eth0.
address=198.51.100.10
link=krn0
peer=krn1
socket=/run/containerd/containerd.sock
# What a node leaves on a machine; `up` refuses where any exists, `down` removes them all.
# The tool's own records are among them: the tests run it as root on this node, so its journal
# and its audit log (/var/log/kubeadm-recover) are the node's too.
node_paths=(/etc/kubernetes /var/lib/kubelet /var/lib/etcd /var/log/pods /var/log/containers
  /run/containerd /var/lib/containerd /var/lib/kubeadm-recover /var/log/kubeadm-recover
  /etc/crictl.yaml)
# The host settings the kubelet rewrites (REALNODE.md): saved at `up`, restored at `down`.
sysctls=(vm.overcommit_memory vm.panic_on_oom kernel.panic kernel.panic_on_oops
  kernel.keys.root_maxkeys kernel.keys.root_maxbytes)

say() { echo "realnode: $*" >&2; }
die() {
  say "$*"
  exit 1
}

# Processes of a node: our kubelet and containerd (by executable, not by name: the simulator's
# processes are called kubelet and kube-apiserver too), the shims and what they run.
node_pids() {
  local pid exe
  for pid in /proc/[0-9]*; do
    exe=$(readlink "$pid/exe" 2>/dev/null) || continue
    case $exe in
      "$bin/kubelet" | /usr/bin/containerd | /usr/bin/containerd-shim* ) echo "${pid#/proc/}" ;;
    esac
  done
  # Everything in the kubepods cgroups (the containers).
  cat /sys/fs/cgroup/pids/kubepods/cgroup.procs /sys/fs/cgroup/pids/kubepods/*/cgroup.procs \
    /sys/fs/cgroup/pids/kubepods/*/*/cgroup.procs /sys/fs/cgroup/pids/kubepods/*/*/*/cgroup.procs 2>/dev/null || true
}

# One line per trace of a node on this machine; nothing when it is clean.
traces() {
  local p
  for p in "${node_paths[@]}"; do
    [ -e "$p" ] && echo "path $p"
  done
  [ -f "$state/supervisor.pid" ] && kill -0 "$(cat "$state/supervisor.pid")" 2>/dev/null && echo "process the kubelet's supervisor"
  for p in $(node_pids | sort -u); do
    echo "process $p $(tr '\0' ' ' <"/proc/$p/cmdline" 2>/dev/null | cut -c1-80)"
  done
  findmnt -rn -o TARGET | grep -E '^/(run/containerd|var/lib/containerd|var/lib/kubelet)(/|$)' | sed 's/^/mount /' || true
  ip link show "$link" >/dev/null 2>&1 && echo "link $link"
  for p in /sys/fs/cgroup/*/kubepods /sys/fs/cgroup/*/kubepods.slice; do
    [ -d "$p" ] && echo "cgroup $p"
  done
  local table
  for table in filter nat mangle; do
    iptables -t "$table" -S 2>/dev/null | grep -E '^-N KUBE-' | sed "s/^/iptables $table /" || true
    ip6tables -t "$table" -S 2>/dev/null | grep -E '^-N KUBE-' | sed "s/^/ip6tables $table /" || true
  done
  if [ -f "$state/sysctls" ]; then
    local name value
    while read -r name value; do
      [ "$(sysctl -n "$name")" = "$value" ] || echo "sysctl $name is $(sysctl -n "$name"), was $value"
    done <"$state/sysctls"
  fi
}

# The machine's means: root, overlayfs, cgroups.
means() {
  [ "$(id -u)" = 0 ] || die "needs root (it runs a real kubelet and containerd)"
  grep -qw overlay /proc/filesystems || die "needs overlayfs (containerd's snapshotter); this kernel has none"
  [ -d /sys/fs/cgroup/pids ] || [ -f /sys/fs/cgroup/cgroup.controllers ] || die "needs cgroups (/sys/fs/cgroup)"
}

# The means, and what a node is made of.
preflight() {
  means
  local tool
  for tool in containerd ctr runc iptables; do
    command -v "$tool" >/dev/null || die "needs $tool (tests/run.sh installs Debian's containerd, runc, containernetworking-plugins and iptables)"
  done
  [ -x /usr/lib/cni/host-local ] || die "needs the CNI plugins in /usr/lib/cni (Debian's containernetworking-plugins)"
  for tool in kubelet kubeadm kube-apiserver kube-controller-manager kube-scheduler etcd kubectl crictl; do
    [ -x "$bin/$tool" ] || die "needs $bin/$tool (tests/upstream/build.sh $version builds it)"
  done
}

# Whether archive $1 is missing or older than a SOURCE=INSIDE file of $2...
stale() {
  local archive=$1 file
  shift
  [ -f "$archive" ] || return 0
  for file in "$@"; do
    case $file in *=*) [ "${file%%=*}" -nt "$archive" ] && return 0 ;; esac
  done
  return 1
}

# The image archives, from the binaries (cached; rebuilt when a binary is newer).
images() {
  local dir=$state/images/$version tools=$state/tools
  mkdir -p "$dir" "$tools"
  # Replaced only when the build differs, so that the archives made from them stay cached.
  local tool
  for tool in pause reject; do
    (cd tests/realnode && CGO_ENABLED=0 go build -trimpath -ldflags '-s -w' -o "$tools/$tool.new" "./$tool")
    if cmp -s "$tools/$tool.new" "$tools/$tool"; then rm "$tools/$tool.new"; else mv "$tools/$tool.new" "$tools/$tool"; fi
  done
  local image name tag
  while read -r image; do
    name=${image#registry.k8s.io/}
    name=${name%%:*}
    tag=$dir/${name//\//_}.tar
    case $name in
      pause) set -- --entrypoint /pause "$tools/pause=/pause" ;;
      etcd) set -- "$bin/etcd=/usr/local/bin/etcd" ;;
      kube-apiserver | kube-controller-manager | kube-scheduler) set -- "$bin/$name=/usr/local/bin/$name" ;;
      *) continue ;; # kube-proxy and coredns: their addon phases are skipped
    esac
    if stale "$tag" "$@"; then
      python3 tests/realnode/images.py "$tag" "$image" "$@"
    fi
    echo "$tag"
  done < <(kubeadm config images list --kubernetes-version "$version" 2>/dev/null)
  # The staged rejection: the same kube-apiserver tag, the refusing wrapper in front of the real binary.
  local reject=$dir/kube-apiserver-reject.tar
  if stale "$reject" "$tools/reject=" "$bin/kube-apiserver="; then
    python3 tests/realnode/images.py "$reject" "registry.k8s.io/kube-apiserver:$version" \
      "$tools/reject=/usr/local/bin/kube-apiserver" "$bin/kube-apiserver=/real/kube-apiserver"
  fi
}

write_configs() {
  local pause
  pause=$(kubeadm config images list --kubernetes-version "$version" 2>/dev/null | grep /pause:)
  mkdir -p "$state/cni" "$state/certs.d/registry.k8s.io" "$state/certs.d/docker.io"
  # Any pull fails at once: the registries are a loopback port where nothing listens.
  local registry
  for registry in registry.k8s.io docker.io; do
    cat >"$state/certs.d/$registry/hosts.toml" <<EOF
server = "https://127.0.0.1:9"
[host."https://127.0.0.1:9"]
  capabilities = ["pull", "resolve"]
EOF
  done
  cat >"$state/cni/10-realnode.conflist" <<'EOF'
{"cniVersion": "1.0.0", "name": "realnode", "plugins": [
  {"type": "bridge", "bridge": "krn-br0", "ipam": {"type": "host-local", "ranges": [[{"subnet": "10.244.0.0/24"}]]}}]}
EOF
  cat >"$state/containerd.toml" <<EOF
version = 2
root = "/var/lib/containerd"
state = "/run/containerd"
[grpc]
  address = "$socket"
[plugins."io.containerd.grpc.v1.cri"]
  sandbox_image = "$pause"
  # A negative oom_score_adj is refused on these machines (no CAP_SYS_RESOURCE in the bounding set).
  restrict_oom_score_adj = true
  [plugins."io.containerd.grpc.v1.cri".containerd]
    snapshotter = "overlayfs"
    default_runtime_name = "runc"
    [plugins."io.containerd.grpc.v1.cri".containerd.runtimes.runc]
      runtime_type = "io.containerd.runc.v2"
      [plugins."io.containerd.grpc.v1.cri".containerd.runtimes.runc.options]
        SystemdCgroup = false
  [plugins."io.containerd.grpc.v1.cri".cni]
    bin_dir = "/usr/lib/cni"
    conf_dir = "$state/cni"
  [plugins."io.containerd.grpc.v1.cri".registry]
    config_path = "$state/certs.d"
EOF
  local fail_cgroup_v1=""
  case $version in
    v1.3[0-4].*) ;;
    *) fail_cgroup_v1="failCgroupV1: false" ;; # v1.35+ refuses cgroup v1 unless told
  esac
  cat >"$state/kubeadm.yaml" <<EOF
apiVersion: kubeadm.k8s.io/v1beta4
kind: InitConfiguration
localAPIEndpoint:
  advertiseAddress: $address
  bindPort: 6443
nodeRegistration:
  name: realnode
  criSocket: unix://$socket
  kubeletExtraArgs:
    - name: node-ip
      value: $address
  # No systemd as PID 1 (the harness supervises the kubelet), no ip_forward (no pod network),
  # cgroup v1 (SystemVerification warns), nothing pulled (every image is imported).
  ignorePreflightErrors: [FileContent--proc-sys-net-ipv4-ip_forward, SystemVerification, ImagePull, Service-Kubelet, Swap]
---
apiVersion: kubeadm.k8s.io/v1beta4
kind: ClusterConfiguration
kubernetesVersion: $version
clusterName: realnode
apiServer:
  extraArgs:
    - name: bind-address
      value: $address
---
apiVersion: kubelet.config.k8s.io/v1beta1
kind: KubeletConfiguration
cgroupDriver: cgroupfs
$fail_cgroup_v1
address: $address
failSwapOn: false
containerRuntimeEndpoint: unix://$socket
# Every image is imported and none can be pulled again: never collect one, never evict for disk.
imageGCHighThresholdPercent: 100
imageGCLowThresholdPercent: 99
evictionHard:
  nodefs.available: "1%"
  imagefs.available: "1%"
  memory.available: "100Mi"
EOF
}

# The kubelet as kubeadm's systemd drop-in runs it, restarted when it exits (Restart=always).
start_kubelet_supervisor() {
  (
    trap 'kill "$child" 2>/dev/null; wait "$child" 2>/dev/null; exit 0' TERM
    child=""
    while :; do
      if [ -f /var/lib/kubelet/config.yaml ] && [ -f /var/lib/kubelet/kubeadm-flags.env ] && [ ! -e "$state/kubelet.hold" ]; then
        KUBELET_KUBEADM_ARGS=""
        # shellcheck disable=SC1091
        . /var/lib/kubelet/kubeadm-flags.env
        # shellcheck disable=SC2086
        kubelet --bootstrap-kubeconfig=/etc/kubernetes/bootstrap-kubelet.conf \
          --kubeconfig=/etc/kubernetes/kubelet.conf --config=/var/lib/kubelet/config.yaml \
          $KUBELET_KUBEADM_ARGS >>"$state/logs/kubelet.log" 2>&1 &
        child=$!
        echo "$child" >"$state/kubelet.pid"
        wait "$child" || true
        child=""
      fi
      sleep 1
    done
  ) </dev/null >/dev/null 2>&1 &
  echo $! >"$state/supervisor.pid"
}

up() {
  preflight
  local left
  left=$(traces)
  [ -z "$left" ] || die "refusing to start: this machine already has (a trace of) a node:
$left
(tests/realnode/node.sh down removes what a previous run of this tier left)"
  local started=$SECONDS
  mkdir -p "$state/logs"
  rm -f "$state/logs/"*.log "$state/kubelet.hold"
  local name
  : >"$state/sysctls"
  for name in "${sysctls[@]}"; do
    echo "$name $(sysctl -n "$name")" >>"$state/sysctls"
  done
  ip link add "$link" type veth peer name "$peer"
  ip addr add "$address/32" dev "$link"
  ip link set "$link" up
  ip link set "$peer" up

  mapfile -t archives < <(images)
  write_configs
  containerd --config "$state/containerd.toml" >>"$state/logs/containerd.log" 2>&1 </dev/null &
  echo $! >"$state/containerd.pid"

  for _ in $(seq 100); do
    [ -S "$socket" ] && ctr --address "$socket" version >/dev/null 2>&1 && break
    sleep 0.1
  done
  local archive
  for archive in "${archives[@]}"; do
    ctr --address "$socket" -n k8s.io images import "$archive" >/dev/null
  done
  cat >/etc/crictl.yaml <<EOF
runtime-endpoint: unix://$socket
image-endpoint: unix://$socket
timeout: 10
EOF
  start_kubelet_supervisor
  kubeadm init --config "$state/kubeadm.yaml" --skip-phases=addon/kube-proxy,addon/coredns \
    >"$state/logs/kubeadm-init.log" 2>&1 || {
    tail -30 "$state/logs/kubeadm-init.log" >&2
    die "kubeadm init failed (the whole log: $state/logs/kubeadm-init.log)"
  }
  # What the tests put back after each of them: the files as kubeadm wrote them.
  rm -rf "$state/pristine"
  mkdir -p "$state/pristine"
  cp -p /etc/kubernetes/manifests/kube-apiserver.yaml /etc/kubernetes/admin.conf \
    /etc/kubernetes/super-admin.conf /etc/kubernetes/controller-manager.conf \
    /etc/kubernetes/scheduler.conf "$state/pristine/"
  cp -a /etc/kubernetes/pki "$state/pristine/pki"
  # Ready: the four static pods run and the node is Ready, through the real kubectl.
  local kubectl=(kubectl --kubeconfig /etc/kubernetes/admin.conf)
  for _ in $(seq 120); do
    if [ "$("${kubectl[@]}" get node realnode -o 'jsonpath={.status.conditions[?(@.type=="Ready")].status}' 2>/dev/null)" = True ] &&
      [ "$("${kubectl[@]}" -n kube-system get pods -o 'jsonpath={range .items[*]}{.status.phase}{"\n"}{end}' 2>/dev/null | grep -c Running)" -ge 4 ]; then
      say "up in $((SECONDS - started)) s: $version, apiserver https://$address:6443"
      return
    fi
    sleep 1
  done
  "${kubectl[@]}" -n kube-system get pods >&2 || true
  die "the node did not become Ready with four control-plane pods Running in 120 s (logs: $state/logs)"
}

kill_and_wait() {
  local pid=$1 signal=${2:-TERM}
  kill -"$signal" "$pid" 2>/dev/null || return 0
  for _ in $(seq 100); do
    kill -0 "$pid" 2>/dev/null || return 0
    sleep 0.1
  done
  kill -KILL "$pid" 2>/dev/null || true
}

down() {
  [ "$(id -u)" = 0 ] || die "needs root"
  local started=$SECONDS pid
  # 1. The kubelet (and its supervisor), so that nothing restarts what follows.
  [ -f "$state/supervisor.pid" ] && kill_and_wait "$(cat "$state/supervisor.pid")"
  for pid in $(node_pids); do
    [ "$(readlink "/proc/$pid/exe" 2>/dev/null)" = "$bin/kubelet" ] && kill_and_wait "$pid"
  done
  # 2. Pods and containers, through the CRI.
  if [ -S "$socket" ]; then
    crictl rmp --force --all >/dev/null 2>&1 || true
    crictl rm --force --all >/dev/null 2>&1 || true
  fi
  # 3. containerd (it can take seconds), then whatever is left in the node's cgroups.
  [ -f "$state/containerd.pid" ] && kill_and_wait "$(cat "$state/containerd.pid")"
  for pid in $(node_pids); do
    kill -KILL "$pid" 2>/dev/null || true
  done
  sleep 0.2
  # 4. Mounts, deepest first (the kubelet bind-mounts its own directory).
  local mount
  for mount in $(findmnt -rn -o TARGET | grep -E '^/(run/containerd|var/lib/containerd|var/lib/kubelet)(/|$)' | sort -r); do
    umount "$mount" 2>/dev/null || umount -l "$mount"
  done
  # 5. cgroups, deepest first, in every hierarchy.
  local dir
  for dir in /sys/fs/cgroup/*/kubepods /sys/fs/cgroup/*/kubepods.slice; do
    if [ -d "$dir" ]; then
      find "$dir" -depth -type d -exec rmdir {} + 2>/dev/null || true
    fi
  done
  # 6. The kubelet's iptables chains.
  local table chain tool
  for tool in iptables ip6tables; do
    for table in filter nat mangle; do
      for chain in $($tool -t "$table" -S 2>/dev/null | sed -n 's/^-N \(KUBE-[^ ]*\).*/\1/p'); do
        { $tool -t "$table" -S 2>/dev/null | grep -E "^-A [A-Z-]+ .*-j $chain( |$)" || true; } | sed 's/^-A/-D/' |
          while read -r rule; do
            # shellcheck disable=SC2086
            $tool -t "$table" $rule 2>/dev/null || true
          done
        $tool -t "$table" -F "$chain" 2>/dev/null || true
        $tool -t "$table" -X "$chain" 2>/dev/null || true
      done
    done
  done
  # 7. The link, the host settings, the files.
  ip link del "$link" 2>/dev/null || true
  if [ -f "$state/sysctls" ]; then
    local name value
    while read -r name value; do
      sysctl -qw "$name=$value"
    done <"$state/sysctls"
  fi
  # A swap file a test turned on (the lockout test), should it have been killed.
  if [ -f "$state/swapfile" ]; then
    swapoff "$state/swapfile" 2>/dev/null || true
    rm -f "$state/swapfile"
  fi
  rm -rf "${node_paths[@]}"
  rm -f "$state/supervisor.pid" "$state/kubelet.pid" "$state/containerd.pid" "$state/kubelet.hold"
  local left
  left=$(traces)
  rm -f "$state/sysctls"
  [ -z "$left" ] || die "down left this behind:
$left"
  say "down in $((SECONDS - started)) s; nothing left"
}

reject_image() {
  local dir=$state/images/$version archive
  case ${1:-} in
    on) archive=$dir/kube-apiserver-reject.tar ;;
    off) archive=$dir/kube-apiserver.tar ;;
    *) die "usage: node.sh reject-image on|off" ;;
  esac
  ctr --address "$socket" -n k8s.io images import "$archive" >/dev/null
}

case ${1:-} in
  up) up ;;
  can-run) means ;;
  down) down ;;
  check)
    left=$(traces)
    [ -z "$left" ] || die "not clean:
$left"
    say "clean"
    ;;
  reject-image) reject_image "${2:-}" ;;
  images) images ;;
  *) die "usage: node.sh up|down|check|can-run|images|reject-image on|off" ;;
esac
