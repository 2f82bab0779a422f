#!/usr/bin/env bash
# A worker node joins with the command cp1 left in the synced folder (and KUBEADM_EXTRA_ARGS,
# as control-plane.sh).
set -euo pipefail
join=/kubeadm-recover/vagrant/.cluster/join-worker.sh
[ -f "$join" ] || { echo "worker.sh: cp1 has not run kubeadm init yet ($join)" >&2; exit 1; }
read -r -a extra <<<"${KUBEADM_EXTRA_ARGS:-}"
bash "$join" "${extra[@]}"
