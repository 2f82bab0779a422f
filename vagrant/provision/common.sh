#!/usr/bin/env bash
# Every node: containerd (systemd cgroups) and the pinned kubeadm, kubelet and kubectl from
# pkgs.k8s.io, held so that an apt upgrade does not move them.
#   common.sh KUBERNETES_VERSION NODE_IP
set -euo pipefail
version=${1:?usage: common.sh KUBERNETES_VERSION NODE_IP}
node_ip=${2:?usage: common.sh KUBERNETES_VERSION NODE_IP}
minor=${version%.*}
export DEBIAN_FRONTEND=noninteractive

swapoff -a
sed -i '/\sswap\s/s/^/#/' /etc/fstab
cat >/etc/modules-load.d/k8s.conf <<CONF
overlay
br_netfilter
CONF
modprobe overlay
modprobe br_netfilter
cat >/etc/sysctl.d/k8s.conf <<CONF
net.bridge.bridge-nf-call-iptables = 1
net.bridge.bridge-nf-call-ip6tables = 1
net.ipv4.ip_forward = 1
CONF
sysctl --system >/dev/null

apt-get update -qq
apt-get install -y -qq containerd apt-transport-https ca-certificates curl gpg openssl python3
mkdir -p /etc/containerd
containerd config default >/etc/containerd/config.toml
sed -i 's/SystemdCgroup = false/SystemdCgroup = true/' /etc/containerd/config.toml
systemctl restart containerd

mkdir -p /etc/apt/keyrings
curl -fsSL "https://pkgs.k8s.io/core:/stable:/v$minor/deb/Release.key" |
  gpg --dearmor --yes -o /etc/apt/keyrings/kubernetes-apt-keyring.gpg
echo "deb [signed-by=/etc/apt/keyrings/kubernetes-apt-keyring.gpg] https://pkgs.k8s.io/core:/stable:/v$minor/deb/ /" \
  >/etc/apt/sources.list.d/kubernetes.list
apt-get update -qq
apt-get install -y -qq --allow-downgrades "kubelet=$version-*" "kubeadm=$version-*" "kubectl=$version-*"
apt-mark hold kubelet kubeadm kubectl

# The kubelet on the private network, not on the NAT interface every VM shares.
echo "KUBELET_EXTRA_ARGS=--node-ip=$node_ip" >/etc/default/kubelet
systemctl enable --now kubelet
