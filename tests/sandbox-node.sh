#!/usr/bin/env bash
# Lays out the files of a kubeadm control-plane node under DIR, the way kubeadm writes them:
# a CA (10 years), admin.conf and super-admin.conf with embedded client certificates
# (CN=kubernetes-admin, O=kubeadm:cluster-admins / CN=kubernetes-super-admin, O=system:masters),
# and a kube-apiserver static pod manifest. Uses the real openssl. Used by the test suite and
# by the README's sandbox example.
#
# usage: tests/sandbox-node.sh DIR [MANIFEST]
set -euo pipefail
dir=${1:?usage: $0 DIR [MANIFEST]}
here=$(cd "$(dirname "$0")" && pwd)
manifest=${2:-$here/fixtures/manifests/kubeadm-1.30.yaml}

k8s=$dir/etc/kubernetes
pki=$k8s/pki
mkdir -p "$k8s/manifests" "$pki"
chmod 700 "$pki"
install -m 0600 "$manifest" "$k8s/manifests/kube-apiserver.yaml"

openssl genrsa -traditional -out "$pki/ca.key" 2048 2>/dev/null
openssl req -x509 -new -key "$pki/ca.key" -subj "/CN=kubernetes" -days 3650 -out "$pki/ca.crt" \
  -addext "basicConstraints=critical,CA:TRUE" -addext "keyUsage=critical,digitalSignature,keyEncipherment,keyCertSign" 2>/dev/null

# The service-account signing key pair every kubeadm control-plane node holds.
openssl genrsa -traditional -out "$pki/sa.key" 2048 2>/dev/null
openssl rsa -in "$pki/sa.key" -pubout -out "$pki/sa.pub" 2>/dev/null

b64() { base64 -w0 < "$1"; }

# kubeconfig FILE CN O USER
kubeconfig() {
  local file=$1 cn=$2 org=$3 user=$4 tmp
  tmp=$(mktemp -d)
  openssl genrsa -traditional -out "$tmp/key" 2048 2>/dev/null
  openssl req -new -key "$tmp/key" -subj "/O=$org/CN=$cn" -out "$tmp/csr" 2>/dev/null
  printf 'keyUsage=critical,digitalSignature,keyEncipherment\nextendedKeyUsage=clientAuth\nbasicConstraints=critical,CA:FALSE\n' > "$tmp/ext"
  openssl x509 -req -in "$tmp/csr" -CA "$pki/ca.crt" -CAkey "$pki/ca.key" -CAcreateserial \
    -days 365 -extfile "$tmp/ext" -out "$tmp/crt" 2>/dev/null
  umask 077
  cat > "$file" <<CONF
apiVersion: v1
clusters:
- cluster:
    certificate-authority-data: $(b64 "$pki/ca.crt")
    server: https://127.0.0.1:6443
  name: kubernetes
contexts:
- context:
    cluster: kubernetes
    user: $user
  name: $user@kubernetes
current-context: $user@kubernetes
kind: Config
preferences: {}
users:
- name: $user
  user:
    client-certificate-data: $(b64 "$tmp/crt")
    client-key-data: $(b64 "$tmp/key")
CONF
  rm -rf "$tmp"
}

kubeconfig "$k8s/admin.conf" kubernetes-admin kubeadm:cluster-admins kubernetes-admin
kubeconfig "$k8s/super-admin.conf" kubernetes-super-admin system:masters kubernetes-super-admin
rm -f "$pki/ca.srl"
