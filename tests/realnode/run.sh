#!/usr/bin/env bash
# The real-node tier: brings up ONE real kubeadm node (tests/realnode/node.sh), runs the
# `realnode::` tests against it one at a time (each leaves the node as it found it), and tears it
# down, leaving nothing. Arguments are test name filters (default: every `realnode::` test).
set -euo pipefail
cd "$(dirname "$0")/../.."
export PATH="${KUBEADM_RECOVER_KUBE_BIN:-$PWD/target/upstream/${KUBERNETES_VERSION:-v1.37.2}/bin}:$PATH"
started=$SECONDS
# Build first (the simulator too: one test compares it with the real kubelet), so that the
# node's minutes are not spent compiling.
cargo build --locked --workspace --features test-clock
cargo test --locked --workspace --features test-clock --test integration --no-run 2>&1 | tail -1
bash tests/realnode/node.sh up || {
  bash tests/realnode/node.sh down || true
  exit 1
}
status=0
# A filter given replaces the default one (every realnode:: test).
filters=("$@")
[ ${#filters[@]} -gt 0 ] || filters=(realnode::)
cargo test --locked --workspace --features test-clock --test integration -- --ignored --test-threads=1 "${filters[@]}" || status=$?
bash tests/realnode/node.sh down || status=1
echo "realnode tier: $((SECONDS - started)) s (bring-up, tests, teardown)" >&2
exit $status
