#!/usr/bin/env bash
# shellcheck disable=SC2317 # functions called by flow.sh and by traps
# The break-glass rehearsal on the Vagrant cluster: the same steps as the kind rehearsal
# (tests/rehearsal/flow.sh), here over SSH into the VMs, the way an operator reaches real nodes:
# on cp1 one command at a time (status, admin.conf expired and regenerated, extend-tokens enable
# with proof, revert, guide at a terminal, certs check, the journal), then the playbooks on every
# control-plane node, one at a time.
#
#   cargo build --release --target x86_64-unknown-linux-musl
#   (cd vagrant && vagrant up && bash rehearse.sh)
# Needs vagrant, ssh and python3 here; ansible-playbook (pip install ansible-core) for the
# playbooks. The two steps that need a kube-apiserver image that refuses a flag (built on the
# machine, loaded into the node's containerd) are skipped: the VMs run the official images.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
repo=$(cd "$here/.." && pwd)
cd "$here"
binary=${KUBEADM_RECOVER_BINARY:-$repo/target/x86_64-unknown-linux-musl/release/kubeadm-recover}
reason="vagrant rehearsal $(date -u +%Y%m%dT%H%M%SZ)"

for tool in vagrant ssh python3; do
  command -v "$tool" >/dev/null || { echo "rehearse.sh: refused: $tool is not installed" >&2; exit 3; }
done
[ -x "$binary" ] || {
  echo "rehearse.sh: refused: no static kubeadm-recover at $binary; build it: cargo build --release --target x86_64-unknown-linux-musl" >&2
  exit 3
}
mapfile -t control_planes < <(vagrant status --machine-readable | awk -F, '$3 == "state" && $4 == "running" && $2 ~ /^cp[0-9]+$/ {print $2}' | sort)
[ ${#control_planes[@]} -gt 0 ] || { echo "rehearse.sh: refused: no control-plane VM is running; run vagrant up first" >&2; exit 3; }

work=$here/.rehearsal
rm -rf "$work"
mkdir -m 700 "$work"
logs=$work/logs
mkdir -p "$logs"
vagrant ssh-config "${control_planes[@]}" >"$work/ssh_config"

# --- How flow.sh reaches the nodes: ssh with Vagrant's config, sudo; Ansible the same way. ----
node_names() { printf '%s\n' "${control_planes[@]}"; }
on_node() {
  local node=$1
  shift
  ssh -F "$work/ssh_config" -q "$node" -- sudo "$(printf '%q ' "$@")"
}
copy_to_node() {
  scp -F "$work/ssh_config" -q "$1" "$2:/tmp/kubeadm-recover.upload"
  on_node "$2" install -o root -g root -m 0755 /tmp/kubeadm-recover.upload "$3"
  on_node "$2" rm -f /tmp/kubeadm-recover.upload
}
terminal_on_node() {
  local node=$1
  shift
  printf '%s\n' ssh -F "$work/ssh_config" -q -t "$node" -- sudo "$@"
}
stage_rejection() {
  echo "the VMs run the official kube-apiserver image; no rejecting image is staged on them"
  return 2
}
inventory() { echo "$work/inventory.ini"; }
{
  echo "[control_plane]"
  printf '%s\n' "${control_planes[@]}"
  echo
  echo "[control_plane:vars]"
  echo "ansible_ssh_common_args='-F $work/ssh_config'"
  echo "ansible_python_interpreter=/usr/bin/python3"
} >"$work/inventory.ini"
# shellcheck source=tests/rehearsal/flow.sh
. "$repo/tests/rehearsal/flow.sh"

started=$SECONDS
echo "vagrant rehearsal on ${control_planes[*]}; logs in $logs"
status=0
step "copy the static binary in, as root" install_binary &&
  rehearse_on_one_node &&
  rehearse_the_playbooks || status=1
echo
if [ $status = 0 ]; then
  echo "vagrant rehearsal passed in $((SECONDS - started)) s."
else
  echo "vagrant rehearsal FAILED; logs in $logs"
fi
exit $status
