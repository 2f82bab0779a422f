#!/usr/bin/env bash
# The break-glass rehearsal on the Vagrant cluster, driven from this machine the way an operator
# drives a real one: with the playbooks over SSH. It expires admin.conf on every control-plane
# node, then runs status.yml, regenerate-admin.yml, extend-tokens.yml (enabled) and revert.yml,
# and verifies each step with kubectl, from cp1 and from here.
#
#   cargo build --release --target x86_64-unknown-linux-musl
#   (cd vagrant && vagrant up && bash rehearse.sh)
# Needs vagrant, ansible-playbook (pip install ansible-core) and python3 here; kubectl here is
# optional (the checks from here are skipped without it).
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
repo=$(cd "$here/.." && pwd)
cd "$here"
binary=${KUBEADM_RECOVER_BINARY:-$repo/target/x86_64-unknown-linux-musl/release/kubeadm-recover}
reason="vagrant rehearsal $(date -u +%Y%m%dT%H%M%SZ)"

for tool in vagrant ansible-playbook python3; do
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
vagrant ssh-config "${control_planes[@]}" >"$work/ssh_config"
{
  echo "[control_plane]"
  printf '%s\n' "${control_planes[@]}"
  echo
  echo "[control_plane:vars]"
  echo "ansible_ssh_common_args='-F $work/ssh_config'"
  echo "ansible_python_interpreter=/usr/bin/python3"
  echo "kubeadm_recover_binary=$binary"
  echo "kubeadm_recover_fetch_dest=$work/fetched"
} >"$work/inventory.ini"
play() { ansible-playbook -i "$work/inventory.ini" "$repo/playbooks/$1" -e "kubeadm_recover_reason='$reason'" "${@:2}"; }
on_cp1() { vagrant ssh "${control_planes[0]}" -c "$1" -- -q; }
step() { printf '\n== %s\n' "$*"; }
flag_on_every_apiserver() {
  on_cp1 "sudo kubectl --kubeconfig /etc/kubernetes/admin.conf -n kube-system get pods -l component=kube-apiserver -o jsonpath='{range .items[*]}{.spec.containers[0].command}{\"\\n\"}{end}'" |
    grep -c -- "--service-account-extend-token-expiration=$1" || true
}

step "expire admin.conf on ${control_planes[*]}"
for cp in "${control_planes[@]}"; do
  vagrant ssh "$cp" -c "sudo bash /kubeadm-recover/tests/rehearsal/expire-admin-conf.sh /" -- -q
  # ...and the copy the vagrant user keeps, as people do (sudo cp admin.conf ~/.kube/config).
  vagrant ssh "$cp" -c "sudo install -o vagrant -g vagrant -m 600 /etc/kubernetes/admin.conf ~/.kube/config" -- -q
done
if on_cp1 "sudo kubectl --kubeconfig /etc/kubernetes/admin.conf get nodes" >/dev/null 2>&1; then
  echo "rehearse.sh: admin.conf still works after it was expired" >&2
  exit 1
fi
echo "locked out: kubectl with admin.conf is refused"

step "status.yml"
play status.yml

step "regenerate-admin.yml"
# (--update-copies: the vagrant user's ~/.kube/config is a copy of the expired admin.conf)
play regenerate-admin.yml -e kubeadm_recover_update_copies=true
on_cp1 "sudo kubectl --kubeconfig /etc/kubernetes/admin.conf auth whoami"
on_cp1 "kubectl get nodes"   # the vagrant user's copy, rewritten
if command -v kubectl >/dev/null; then
  kubectl --kubeconfig "$work/fetched/${control_planes[0]}/admin.conf" get nodes -o wide
fi

step "extend-tokens.yml state=enabled"
play extend-tokens.yml -e state=enabled
on=$(flag_on_every_apiserver true)
[ "$on" -eq ${#control_planes[@]} ] || { echo "rehearse.sh: $on of ${#control_planes[@]} apiservers run with the flag on" >&2; exit 1; }
echo "every apiserver runs with --service-account-extend-token-expiration=true"

step "revert.yml"
play revert.yml -e kubeadm_recover_accept_stale_tokens=true
on=$(flag_on_every_apiserver true)
[ "$on" -eq 0 ] || { echo "rehearse.sh: $on apiservers still run with the flag after revert" >&2; exit 1; }
on_cp1 "sudo kubectl --kubeconfig /etc/kubernetes/admin.conf get --raw /readyz"
echo
echo "vagrant rehearsal passed."
