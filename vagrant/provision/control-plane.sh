#!/usr/bin/env bash
# A control-plane node: the first one runs kubeadm init (and a CNI), the others join it as
# control-plane nodes. The join commands go to /kubeadm-recover/vagrant/.cluster/, the synced
# folder every VM shares.
#   control-plane.sh init|join NODE_IP ENDPOINT KUBERNETES_VERSION
set -euo pipefail
role=${1:?usage: control-plane.sh init|join NODE_IP ENDPOINT KUBERNETES_VERSION}
node_ip=${2:?}
endpoint=${3:?}
version=${4:?}
shared=/kubeadm-recover/vagrant/.cluster
# Pinned with the cluster: flannel's manifest for its release (pod network 10.244.0.0/16).
flannel=https://github.com/flannel-io/flannel/releases/download/v0.27.4/kube-flannel.yml

if [ "$role" = init ]; then
  mkdir -p "$shared"
  kubeadm init --kubernetes-version "v$version" \
    --control-plane-endpoint "$endpoint" \
    --apiserver-advertise-address "$node_ip" \
    --pod-network-cidr 10.244.0.0/16 \
    --upload-certs | tee "$shared/init.log"
  # Every VM has the same NAT address on its first interface: flannel must use the private one.
  iface=$(ip -o -4 addr show | awk -v ip="$node_ip" '$4 ~ "^" ip "/" {print $2}')
  curl -fsSL "$flannel" | sed "s|- --kube-subnet-mgr|- --kube-subnet-mgr\n        - --iface=$iface|" |
    kubectl --kubeconfig /etc/kubernetes/admin.conf apply -f -
  kubeadm token create --print-join-command >"$shared/join-worker.sh"
  cert_key=$(kubeadm init phase upload-certs --upload-certs | tail -n1)
  echo "$(cat "$shared/join-worker.sh") --control-plane --certificate-key $cert_key" >"$shared/join-control-plane.sh"
  chmod 600 "$shared"/*.sh
else
  [ -f "$shared/join-control-plane.sh" ] || { echo "control-plane.sh: cp1 has not run kubeadm init yet ($shared)" >&2; exit 1; }
  bash "$shared/join-control-plane.sh" --apiserver-advertise-address "$node_ip"
fi
mkdir -p /home/vagrant/.kube
cp /etc/kubernetes/admin.conf /home/vagrant/.kube/config
chown -R vagrant: /home/vagrant/.kube
