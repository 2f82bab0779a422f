#!/usr/bin/env bash
# Replaces the credential in ROOT/etc/kubernetes/admin.conf with an expired one: the same
# identity, signed by the cluster's CA (ROOT/etc/kubernetes/pki/ca.{crt,key}), valid only on
# 2020-01-01. That is the state a break-glass rehearsal starts from ("x509: certificate has
# expired"), without waiting a year. ROOT is / on a node, or a copy of its /etc/kubernetes under
# a directory (the kind rehearsal). Needs openssl and base64.
#
#   sudo bash tests/rehearsal/expire-admin-conf.sh /
set -euo pipefail

root=${1:?usage: expire-admin-conf.sh ROOT (/ on a control-plane node)}
kubeconfig=$root/etc/kubernetes/admin.conf
pki=$root/etc/kubernetes/pki
for f in "$kubeconfig" "$pki/ca.crt" "$pki/ca.key"; do
  [ -r "$f" ] || { echo "expire-admin-conf.sh: cannot read $f (run as root, on a kubeadm control-plane node)" >&2; exit 3; }
done
command -v openssl >/dev/null || { echo "expire-admin-conf.sh: openssl is not installed" >&2; exit 3; }

work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT

# The identity of the credential there now, in the order kubeadm wrote it (O=..., CN=...).
grep -m1 'client-certificate-data:' "$kubeconfig" | awk '{print $2}' | base64 -d >"$work/old.crt"
subject=$(openssl x509 -in "$work/old.crt" -noout -subject -nameopt RFC2253 |
  sed 's/^subject=//' | tr ',' '\n' | tac | sed 's|^|/|' | tr -d '\n')

openssl genrsa -out "$work/key.pem" 2048 2>/dev/null
openssl req -new -key "$work/key.pem" -subj "$subject" -out "$work/req.csr"
cat >"$work/ca.cnf" <<CNF
[ca]
default_ca = rehearsal
[rehearsal]
database = $work/index.txt
new_certs_dir = $work
serial = $work/serial
default_md = sha256
policy = any
preserve = yes
x509_extensions = client
[any]
organizationName = optional
commonName = supplied
[client]
basicConstraints = critical, CA:FALSE
keyUsage = critical, digitalSignature, keyEncipherment
extendedKeyUsage = clientAuth
CNF
: >"$work/index.txt"
echo 1000 >"$work/serial"
openssl ca -batch -notext -config "$work/ca.cnf" -cert "$pki/ca.crt" -keyfile "$pki/ca.key" \
  -startdate 20200101000000Z -enddate 20200102000000Z \
  -in "$work/req.csr" -out "$work/new.crt" 2>"$work/ca.log" ||
  { cat "$work/ca.log" >&2; exit 1; }

cert=$(base64 -w0 <"$work/new.crt")
key=$(base64 -w0 <"$work/key.pem")
# In place (sed keeps the file's owner and mode); only the two data lines change.
sed -i -e "s|^\(\s*client-certificate-data:\).*|\1 $cert|" \
  -e "s|^\(\s*client-key-data:\).*|\1 $key|" "$kubeconfig"
echo "$kubeconfig: now holds $subject, expired on $(openssl x509 -in "$work/new.crt" -noout -enddate | sed 's/notAfter=//')"
