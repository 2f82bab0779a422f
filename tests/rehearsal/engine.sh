#!/usr/bin/env bash
# A Docker engine of the rehearsal's own, for a machine where none runs (CI): Debian's dockerd,
# started by hand and kept off the machine's network and files:
#   - no host iptables rules, no forwarding, no masquerade; no default bridge (--bridge=none); the
#     rehearsal's networks get addresses of the benchmarking range (198.18.0.0/15, RFC 2544),
#     never eth0's subnet (checked);
#   - its own data root (target/kind/engine: the built images stay, as a cache), exec root,
#     pid file, socket and cgroup parent;
#   - a runtime that is runc minus CAP_SYS_RESOURCE (nocapres/: these machines' bounding set lacks
#     it, and kind runs its nodes --privileged);
#   - the host sysctls a node's kubelet rewrites saved, and put back at `down`.
#
# usage: tests/rehearsal/engine.sh up|down|check
#   up     starts it (refuses where a trace of it is left: run `down` first); prints the
#          DOCKER_HOST to use
#   down   removes every container in it, stops it, and checks that nothing is left: no process,
#          mount, bridge, cgroup or socket (exit 1 and what is left if something is)
#   check  says whether the machine is clean of it
set -euo pipefail
cd "$(dirname "$0")/../.."
repo=$PWD
state=$repo/target/kind/engine
run=/run/kubeadm-recover-engine
socket=$run/docker.sock
cgroup_parent=kubeadm-recover-rehearsal
# The rehearsal's networks: 198.18.0.0/15 is for benchmarking (RFC 2544), on no real network.
pool=198.18.0.0/16
sysctls=(vm.overcommit_memory vm.panic_on_oom kernel.panic kernel.panic_on_oops
  kernel.keys.root_maxkeys kernel.keys.root_maxbytes)
export PATH="$PATH:/usr/sbin:/sbin:/usr/local/go/bin"

say() { echo "engine: $*" >&2; }
die() {
  say "$*"
  exit 1
}

engine_pids() {
  local pid exe
  for pid in /proc/[0-9]*; do
    exe=$(readlink "$pid/exe" 2>/dev/null) || continue
    case $exe in
      /usr/sbin/dockerd | /usr/sbin/docker-proxy | /usr/bin/containerd | /usr/bin/containerd-shim*)
        # Only ours: the others (the real-node tier's containerd) are not started with our paths.
        if tr '\0' ' ' <"$pid/cmdline" 2>/dev/null | grep -q -e "$run" -e "$state"; then
          echo "${pid#/proc/}"
        fi
        ;;
    esac
  done
  # Everything in our containers' cgroups.
  cat "/sys/fs/cgroup/pids/$cgroup_parent/cgroup.procs" "/sys/fs/cgroup/pids/$cgroup_parent"/*/cgroup.procs 2>/dev/null || true
}

# The bridges of the engine's networks: the links with an address in its pool (never another
# engine's bridges, nor any other link of the machine).
our_bridges() {
  ip -o -4 addr show 2>/dev/null | awk '$4 ~ /^198\.18\./ {print $2}' | sort -u
}

# One line per trace of the engine on this machine; nothing when it is clean.
traces() {
  local pid mount dir link
  for pid in $(engine_pids); do
    echo "process $pid: $(tr '\0' ' ' <"/proc/$pid/cmdline" 2>/dev/null | cut -c1-120)"
  done
  for mount in $(findmnt -rn -o TARGET | grep -E "^($run|$state)(/|$)" || true); do
    echo "mount $mount"
  done
  for dir in /sys/fs/cgroup/*/"$cgroup_parent"; do
    [ -d "$dir" ] && echo "cgroup $dir"
  done
  for link in $(our_bridges); do
    echo "link $link"
  done
  [ -e "$run" ] && echo "directory $run"
  return 0
}

kill_and_wait() {
  local pid=$1 _
  kill "$pid" 2>/dev/null || return 0
  for _ in $(seq 150); do
    kill -0 "$pid" 2>/dev/null || return 0
    sleep 0.2
  done
  kill -KILL "$pid" 2>/dev/null || true
}

up() {
  [ "$(id -u)" = 0 ] || die "needs root (it starts dockerd)"
  command -v dockerd >/dev/null || die "needs dockerd (tests/run.sh installs Debian's docker.io)"
  local left
  left=$(traces)
  [ -z "$left" ] || die "refused: a trace of an earlier engine is left (tests/rehearsal/engine.sh down removes it):
$left"
  # Stay off the machine's own addresses.
  if ip -o -4 addr show | awk '{print $4}' | grep -q '^198\.18\.'; then
    die "refused: this machine already has an address in $pool; the rehearsal's networks would clash with it"
  fi
  mkdir -p "$state/data" "$state/bin"
  mkdir -p "$run"
  chmod 700 "$run"
  (cd tests/rehearsal && CGO_ENABLED=0 go build -trimpath -ldflags '-s -w' -o "$state/bin/nocapres" ./nocapres)
  local name
  : >"$state/sysctls"
  for name in "${sysctls[@]}"; do
    echo "$name $(sysctl -n "$name")" >>"$state/sysctls"
  done
  mkdir -p "$state/logs"
  dockerd --data-root "$state/data" --exec-root "$run/exec" --pidfile "$run/dockerd.pid" \
    --host "unix://$socket" --group root \
    --iptables=false --ip6tables=false --ip-forward=false --ip-masq=false --bridge=none \
    --default-address-pool "base=$pool,size=24" \
    --cgroup-parent "/$cgroup_parent" --oom-score-adjust 0 \
    --add-runtime "nocapres=$state/bin/nocapres" --default-runtime nocapres \
    --storage-driver overlay2 >"$state/logs/dockerd.log" 2>&1 &
  local _ dockerd=$!
  for _ in $(seq 150); do
    DOCKER_HOST=unix://$socket docker version >/dev/null 2>&1 && break
    kill -0 "$dockerd" 2>/dev/null || break
    sleep 0.2
  done
  if ! DOCKER_HOST=unix://$socket docker version >/dev/null 2>&1; then
    # What this call started is stopped again: nothing is left of a failed start.
    down >/dev/null 2>&1 || true
    die "dockerd did not start or answer in 30 s; its log: $state/logs/dockerd.log
$(tail -n 5 "$state/logs/dockerd.log")"
  fi
  # An earlier run killed half-way may have left containers in the data root: they are ours.
  local stale
  stale=$(DOCKER_HOST=unix://$socket docker ps -aq)
  # shellcheck disable=SC2086
  [ -z "$stale" ] || DOCKER_HOST=unix://$socket docker rm -f $stale >/dev/null
  DOCKER_HOST=unix://$socket docker network prune -f >/dev/null
  echo "unix://$socket"
}

down() {
  [ "$(id -u)" = 0 ] || die "needs root"
  if [ -S "$socket" ] && DOCKER_HOST=unix://$socket docker version >/dev/null 2>&1; then
    local containers
    containers=$(DOCKER_HOST=unix://$socket docker ps -aq)
    # shellcheck disable=SC2086
    [ -z "$containers" ] || DOCKER_HOST=unix://$socket docker rm -f $containers >/dev/null 2>&1 || true
    DOCKER_HOST=unix://$socket docker network prune -f >/dev/null 2>&1 || true
  fi
  [ -f "$run/dockerd.pid" ] && kill_and_wait "$(cat "$run/dockerd.pid")"
  local pid
  for pid in $(engine_pids); do
    kill -KILL "$pid" 2>/dev/null || true
  done
  sleep 0.2
  local mount
  for mount in $(findmnt -rn -o TARGET | grep -E "^($run|$state)(/|$)" | sort -r || true); do
    umount "$mount" 2>/dev/null || umount -l "$mount" || true
  done
  local dir
  for dir in /sys/fs/cgroup/*/"$cgroup_parent"; do
    [ -d "$dir" ] && { find "$dir" -depth -type d -exec rmdir {} + 2>/dev/null || true; }
  done
  local link
  for link in $(our_bridges); do
    ip link del "$link" 2>/dev/null || true
  done
  if [ -f "$state/sysctls" ]; then
    local name value
    while read -r name value; do
      sysctl -qw "$name=$value" || true
    done <"$state/sysctls"
    rm -f "$state/sysctls"
  fi
  rm -rf "$run"
  # containerd's shims keep their sockets in /run/containerd/s whatever the engine's paths:
  # removed when empty (the real-node tier's containerd uses /run/containerd too).
  rmdir /run/containerd/s /run/containerd 2>/dev/null || true
  local left
  left=$(traces)
  [ -z "$left" ] || die "left behind:
$left"
}

case ${1:-} in
  up) up ;;
  down) down ;;
  check)
    left=$(traces)
    [ -z "$left" ] || die "not clean:
$left"
    ;;
  *) die "usage: engine.sh up|down|check" ;;
esac
