#!/usr/bin/env bash
# A tour on a sandbox node (no cluster, no root needed): lays out a kubeadm node in a temp dir,
# then runs status, a dry run, a real change, the backups, and a byte-exact restore.
# usage: tests/sandbox-demo.sh [--keep]
set -euo pipefail
cd "$(dirname "$0")/.."
cargo build --release --locked -q
bin=$PWD/target/release/kubeadm-recover
node=$(mktemp -d /tmp/kubeadm-recover-sandbox.XXXXXX)
[ "${1:-}" = "--keep" ] || trap 'rm -rf "$node"' EXIT
bash tests/sandbox-node.sh "$node"

step() { printf '\n\033[1m$ kubeadm-recover --root %s %s\033[0m\n' "$node" "$*"; "$bin" --root "$node" "$@"; }
step status
step extend-tokens disable --dry-run
step extend-tokens disable --no-wait --yes --reason "sandbox demo"
step status
step backups list
id=$("$bin" --root "$node" backups list -o json | sed -n 's/.*"id": "\(.*\)".*/\1/p' | head -1)
step backups restore "$id" --no-wait --yes
cmp "$node/etc/kubernetes/manifests/kube-apiserver.yaml" tests/fixtures/manifests/kubeadm-1.30.yaml
printf '\nrestored manifest is byte-for-byte the original.\n'
[ "${1:-}" != "--keep" ] || printf 'sandbox kept: kubeadm-recover --root %s status\n' "$node"
