#!/usr/bin/env bash
# The binary an operator copies onto a broken node with scp: built static for
# x86_64-unknown-linux-musl with the release profile, then checked the way it will be used:
# no dynamic loader or shared library needed, stripped, under 10 MB, `--version` naming the
# commit it was built from, and the whole `rehearse` run by it (with the static simulator
# beside it). aarch64 too when its toolchain is here, run under qemu-user (AARCH64=1, as in CI,
# makes that a requirement).
set -euo pipefail
cd "$(dirname "$0")/.."
limit=$((10 * 1000 * 1000))

check_static() { # BINARY
  local binary=$1 size
  if readelf -l "$binary" | grep -q 'INTERP' || readelf -d "$binary" | grep -q 'NEEDED'; then
    echo "static binary: $binary needs a dynamic loader or shared libraries:" >&2
    readelf -d "$binary" | grep NEEDED >&2 || true
    exit 1
  fi
  if readelf -S "$binary" | grep -q '\.symtab'; then
    echo "static binary: $binary is not stripped" >&2
    exit 1
  fi
  size=$(stat -c %s "$binary")
  if [ "$size" -ge "$limit" ]; then
    echo "static binary: $binary is $size bytes, over the $limit-byte limit" >&2
    exit 1
  fi
  echo "static binary: $binary: static, stripped, $size bytes ($(awk "BEGIN {printf \"%.1f\", $size / 1048576}") MiB)"
}

target=x86_64-unknown-linux-musl
cargo build --release --locked --target "$target"
binary=target/$target/release/kubeadm-recover
check_static "$binary"
echo "static binary: ldd says: $(ldd "$binary" 2>&1 | head -n1 | sed 's/^\s*//')"

commit=$(git rev-parse --short=12 HEAD)
version=$("$binary" --version)
echo "static binary: $version"
case "$version" in
  "kubeadm-recover $(sed -n 's/^version = "\(.*\)"/\1/p' Cargo.toml | head -n1) ($commit "*) ;;
  *) echo "static binary: --version does not name the version and commit $commit: $version" >&2; exit 1 ;;
esac

# The whole break-glass flow by the static binary, on a simulated node, on a "node" that has
# nothing else: a chroot holding only the two binaries, /proc, /dev/null and an empty /tmp (no
# libc, no loader, no /etc, no shell). Without root (no chroot), it runs as it is.
if [ "$(id -u)" = 0 ] && command -v unshare >/dev/null; then
  bare=$(mktemp -d)
  mkdir -p "$bare/bin" "$bare/tmp" "$bare/proc" "$bare/dev"
  chmod 1777 "$bare/tmp"
  touch "$bare/dev/null"
  cp "$binary" "target/$target/release/kubeadm-recover-sim" "$bare/bin/"
  echo "static binary: rehearse in a chroot holding only the binaries ($bare)"
  unshare --mount sh -c "mount -t proc proc '$bare/proc' && mount --bind /dev/null '$bare/dev/null' &&
    exec chroot '$bare' /bin/kubeadm-recover rehearse"
  rm -rf "$bare"
else
  "$binary" rehearse
fi

if rustup target list --installed 2>/dev/null | grep -qx aarch64-unknown-linux-musl &&
  command -v aarch64-linux-gnu-gcc >/dev/null; then
  cargo build --release --locked --target aarch64-unknown-linux-musl --package kubeadm-recover
  arm=target/aarch64-unknown-linux-musl/release/kubeadm-recover
  readelf -h "$arm" | grep -q 'Machine:.*AArch64' || { echo "static binary: $arm is not an AArch64 executable" >&2; exit 1; }
  check_static "$arm"
  # Run under qemu-user when it is here: its version, and its read of a node (manifest,
  # certificates, kubeconfigs) laid out by the x86_64 simulator.
  if command -v qemu-aarch64-static >/dev/null; then
    echo "static binary (aarch64, qemu): $(qemu-aarch64-static "$arm" --version)"
    node=$(mktemp -d)
    trap 'rm -rf "$node"' EXIT
    "target/$target/release/kubeadm-recover-sim" node --root "$node" >/dev/null
    qemu-aarch64-static "$arm" --root "$node" status -o json |
      grep -q '"path": "/etc/kubernetes/manifests/kube-apiserver.yaml"' ||
      { echo "static binary: the aarch64 build could not read a node" >&2; exit 1; }
    echo "static binary (aarch64, qemu): status of a simulated node read"
  elif [ -n "${AARCH64:-}" ]; then
    echo "static binary: AARCH64 is set, and qemu-aarch64-static (qemu-user-static) is missing" >&2
    exit 1
  fi
elif [ -n "${AARCH64:-}" ]; then
  echo "static binary: AARCH64 is set, and the aarch64-unknown-linux-musl target or aarch64-linux-gnu-gcc is missing" >&2
  exit 1
else
  echo "static binary: NOTE: aarch64 skipped (rustup target add aarch64-unknown-linux-musl; apt install gcc-aarch64-linux-gnu)"
fi
