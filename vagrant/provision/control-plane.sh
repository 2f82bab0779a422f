#!/usr/bin/env bash
# A control-plane node: the first one runs kubeadm init (and a CNI), the others join it as
# control-plane nodes. The join commands go to /kubeadm-recover/vagrant/.cluster/, the synced
# folder every VM shares.
#   control-plane.sh init|join NODE_IP ENDPOINT KUBERNETES_VERSION
# Environment (the Vagrantfile passes the host's on):
#   KUBEADM_EXTRA_ARGS  more arguments for kubeadm init and join alike (a box on cgroup v1:
#                       --patches DIR with a KubeletConfiguration saying failCgroupV1: false)
#   CNI_MANIFEST        the pod network: flannel's release (default), a URL or a file of your
#                       own (an air-gapped box), or "none" where the box brings its CNI
set -euo pipefail
role=${1:?usage: control-plane.sh init|join NODE_IP ENDPOINT KUBERNETES_VERSION}
node_ip=${2:?}
endpoint=${3:?}
version=${4:?}
shared=/kubeadm-recover/vagrant/.cluster
read -r -a extra <<<"${KUBEADM_EXTRA_ARGS:-}"
# Pinned with the cluster: flannel's manifest for its release (pod network 10.244.0.0/16).
cni=${CNI_MANIFEST:-https://github.com/flannel-io/flannel/releases/download/v0.27.4/kube-flannel.yml}

# init.log and the join files hold the bootstrap token and the certificate key: the owner's only
# (the files, not kubeadm's own: its directories keep their modes).
private() { (umask 077 && "$@"); }
if [ "$role" = init ]; then
  private mkdir -p "$shared"
  # The key that encrypts the uploaded certificates, made here: asking for it after init
  # (`kubeadm init phase upload-certs`) connects to the default route's address, which is not in
  # the apiserver's certificate when the node is on a private network.
  cert_key=$(kubeadm certs certificate-key)
  kubeadm init --kubernetes-version "v$version" \
    --control-plane-endpoint "$endpoint" \
    --apiserver-advertise-address "$node_ip" \
    --pod-network-cidr 10.244.0.0/16 \
    --upload-certs --certificate-key "$cert_key" "${extra[@]}" | private tee "$shared/init.log"
  if [ "$cni" != none ]; then
    # Every VM has the same NAT address on its first interface: flannel must use the private one.
    iface=$(ip -o -4 addr show | awk -v ip="$node_ip" '$4 ~ "^" ip "/" {print $2}')
    case $cni in
      http://* | https://*) curl -fsSL "$cni" ;;
      *) cat "$cni" ;;
    esac | sed "s|- --kube-subnet-mgr|- --kube-subnet-mgr\n        - --iface=$iface|" |
      kubectl --kubeconfig /etc/kubernetes/admin.conf apply -f -
  fi
  # The join commands pass on their own arguments ("$@"): each node adds its address.
  join=$(kubeadm token create --print-join-command)
  printf '%s "$@"\n' "$join" | private tee "$shared/join-worker.sh" >/dev/null
  printf '%s --control-plane --certificate-key %s "$@"\n' "$join" "$cert_key" |
    private tee "$shared/join-control-plane.sh" >/dev/null
  # tee keeps the mode of a file left by an earlier run; a shared folder may keep none at all.
  chmod 600 "$shared/init.log" "$shared/join-worker.sh" "$shared/join-control-plane.sh" ||
    echo "control-plane.sh: warning: $shared keeps no file modes: on the host, vagrant/.cluster is as private as the checkout" >&2
else
  [ -f "$shared/join-control-plane.sh" ] || { echo "control-plane.sh: cp1 has not run kubeadm init yet ($shared)" >&2; exit 1; }
  # Its own address, not the NAT one: etcd's peer URL and the apiserver's advertised address.
  bash "$shared/join-control-plane.sh" --apiserver-advertise-address "$node_ip" "${extra[@]}"
fi
mkdir -p /home/vagrant/.kube
cp /etc/kubernetes/admin.conf /home/vagrant/.kube/config
chown -R vagrant: /home/vagrant/.kube
