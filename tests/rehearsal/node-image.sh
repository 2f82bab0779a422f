#!/usr/bin/env bash
# The kind node image, built on this machine for machines with no registry (kind's own
# `kind build node-image` fetches images, which cannot work offline), and the stand-in for kind's
# load-balancer image. What goes in (kind's source says what a node image must hold; see
# kind-offline-notes.md):
#   - a Debian 12 rootfs made with mmdebstrap: systemd, Debian's containerd 1.6 and runc (the
#     real-node tier's), the CNI plugins, iptables, and openssh-server + python3 so that Ansible
#     reaches the node the way it reaches a real one;
#   - kind's base files from kind's own source at the version kind.sh pins (its entrypoint, the
#     kubelet unit with kubeadm's drop-in, the crictl config), with the changes these machines
#     need: containerd from Debian, no OOMScoreAdjust=-999 and restrict_oom_score_adj (a negative
#     oom_score_adj is refused here), a bridge CNI config (the rehearsal needs no pod network:
#     kind's CNI is not installed), and pulls that fail at once;
#   - kubeadm, kubelet and kubectl, and the control-plane image archives, of the real-node tier
#     (tests/realnode/node.sh images), preloaded into the node's containerd.
# Cached twice: the rootfs tar under target/kind/, and the images in the engine (their tags
# carry a hash of every input, so a change rebuilds them).
#
# usage: tests/rehearsal/node-image.sh KIND_VERSION   (DOCKER_HOST set; prints two lines:
#        the node image and the load-balancer image)
set -euo pipefail
cd "$(dirname "$0")/../.."
repo=$PWD
kind_version=${1:?usage: node-image.sh KIND_VERSION}
version=${KUBERNETES_VERSION:-v1.37.2}
bin=${KUBEADM_RECOVER_KUBE_BIN:-$repo/target/upstream/$version/bin}
state=$repo/target/kind
export PATH="$bin:$PATH:/usr/local/go/bin:/usr/sbin:/sbin"
export DOCKER_BUILDKIT=0

say() { echo "node-image: $*" >&2; }
die() {
  say "$*"
  exit 1
}

packages=(systemd systemd-sysv dbus conntrack iptables iproute2 ethtool util-linux mount kmod openssl
  libseccomp2 bash ca-certificates procps containerd runc containernetworking-plugins
  openssh-server python3)
for tool in mmdebstrap docker go kubeadm; do
  command -v "$tool" >/dev/null || die "needs $tool (tests/run.sh installs mmdebstrap and docker.io; Go and the Kubernetes binaries come from tests/upstream/build.sh)"
done
for tool in kubeadm kubelet kubectl; do
  [ -x "$bin/$tool" ] || die "needs $bin/$tool (tests/upstream/build.sh $version builds it)"
done

# 1. The rootfs (about 1.5 min; cached by its package list).
mkdir -p "$state"
rootfs_hash=$(printf '%s\n' bookworm "${packages[@]}" | sha256sum | cut -c1-12)
rootfs=$state/rootfs-$rootfs_hash.tar
if [ ! -f "$rootfs" ]; then
  say "building the Debian rootfs (mmdebstrap, once)"
  rm -rf "$state"/rootfs-*.tar "$state/rootfs-partial.tar"
  mmdebstrap --quiet --variant=minbase --include="$(
    IFS=,
    echo "${packages[*]}"
  )" \
    --dpkgopt='path-exclude=/usr/share/man/*' --dpkgopt='path-exclude=/usr/share/doc/*' \
    --dpkgopt='path-exclude=/usr/share/locale/*' \
    bookworm "$state/rootfs-partial.tar" http://deb.debian.org/debian
  mv "$state/rootfs-partial.tar" "$rootfs"
fi
base=kubeadm-recover/rootfs:$rootfs_hash
docker image inspect "$base" >/dev/null 2>&1 || docker import "$rootfs" "$base" >/dev/null

# 2. The build context: kind's base files, our changes, the binaries, the image archives.
kind_source=$(go mod download -json "sigs.k8s.io/kind@$kind_version" | sed -n 's/^\s*"Dir": "\(.*\)",$/\1/p')
[ -d "$kind_source/images/base/files" ] || die "kind $kind_version's source has no images/base/files"
archives=$(bash tests/realnode/node.sh images)
pause=$(kubeadm config images list --kubernetes-version "$version" 2>/dev/null | grep /pause:)
context=$state/build/node
rm -rf "$context"
mkdir -p "$context/files" "$context/bin" "$context/images"
cp -a "$kind_source/images/base/files/." "$context/files/"
# The Go module cache keeps no exec bits.
chmod -R u+w,go-w "$context/files"
chmod 0755 "$context/files/usr/local/bin/"* "$context/files/kind/bin/"*
for tool in kubeadm kubelet kubectl; do
  cp "$bin/$tool" "$context/bin/"
done
# shellcheck disable=SC2086
cp $archives "$context/images/"
rm -f "$context/images/kube-apiserver-reject.tar"
files=$context/files
sed -i -e 's|^ExecStart=/usr/local/bin/containerd|ExecStart=/usr/bin/containerd|' -e '/^OOMScoreAdjust=/d' \
  "$files/etc/systemd/system/containerd.service"
cat >"$files/etc/containerd/config.toml" <<EOF
# kind's containerd configuration (images/base/files/etc/containerd/config.toml of kind
# $kind_version) for Debian's containerd 1.6 on these machines: no fuse-overlayfs, a negative
# oom_score_adj restricted (it is refused here), the CNI plugins where Debian puts them, and
# every pull failing at once (the registries resolve to a port where nothing listens).
version = 2
[plugins."io.containerd.grpc.v1.cri"]
  sandbox_image = "$pause"
  tolerate_missing_hugepages_controller = true
  restrict_oom_score_adj = true
  [plugins."io.containerd.grpc.v1.cri".containerd]
    discard_unpacked_layers = true
    snapshotter = "overlayfs"
    default_runtime_name = "runc"
    [plugins."io.containerd.grpc.v1.cri".containerd.runtimes.runc]
      runtime_type = "io.containerd.runc.v2"
      [plugins."io.containerd.grpc.v1.cri".containerd.runtimes.runc.options]
        SystemdCgroup = true
  [plugins."io.containerd.grpc.v1.cri".cni]
    bin_dir = "/usr/lib/cni"
    conf_dir = "/etc/cni/net.d"
  [plugins."io.containerd.grpc.v1.cri".registry]
    config_path = "/etc/containerd/certs.d"
EOF
for registry in registry.k8s.io docker.io; do
  mkdir -p "$files/etc/containerd/certs.d/$registry"
  cat >"$files/etc/containerd/certs.d/$registry/hosts.toml" <<EOF
server = "https://127.0.0.1:9"
[host."https://127.0.0.1:9"]
  capabilities = ["pull", "resolve"]
EOF
done
mkdir -p "$files/etc/cni/net.d"
cat >"$files/etc/cni/net.d/10-rehearsal.conflist" <<'EOF'
{"cniVersion": "1.0.0", "name": "rehearsal", "plugins": [
  {"type": "bridge", "bridge": "cni0", "ipam": {"type": "host-local", "ranges": [[{"subnet": "10.244.0.0/24"}]]}},
  {"type": "portmap", "capabilities": {"portMappings": true}}]}
EOF
printf '%s\n' "$version" >"$files/kind-version"
cat >"$context/Dockerfile" <<'EOF'
ARG BASE
FROM $BASE
COPY files/ /
COPY bin/ /usr/bin/
COPY images/ /kind/images/
# What kind's base image does after its packages (images/base/Dockerfile), then the images
# preloaded into containerd's k8s.io namespace, as `kind build node-image` does (--no-unpack:
# only the content store, no snapshotter needed at build time).
RUN set -e; \
  mv /kind-version /kind/version; \
  find /lib/systemd/system/sysinit.target.wants/ -name "systemd-tmpfiles-setup.service" -delete; \
  rm -f /lib/systemd/system/multi-user.target.wants/* /etc/systemd/system/*.wants/* \
    /lib/systemd/system/local-fs.target.wants/* /lib/systemd/system/sockets.target.wants/*udev* \
    /lib/systemd/system/sockets.target.wants/*initctl* /lib/systemd/system/basic.target.wants/*; \
  echo "ReadKMsg=no" >> /etc/systemd/journald.conf; \
  systemctl enable kubelet.service containerd.service undo-mount-hacks.service ssh.service; \
  systemctl mask systemd-binfmt.service; \
  mkdir -p /etc/kubernetes/manifests /root/.ssh; chmod 700 /root/.ssh; \
  containerd >/tmp/containerd.log 2>&1 & pid=$!; \
  for i in $(seq 100); do ctr version >/dev/null 2>&1 && break; sleep 0.1; done; \
  for archive in /kind/images/*.tar; do \
    ctr --namespace=k8s.io images import --no-unpack --all-platforms --digests "$archive" >/dev/null; \
  done; \
  ctr --namespace=k8s.io images list -q; \
  kill $pid; wait $pid || true; \
  rm -rf /kind/images /tmp/containerd.log /run/containerd
ENV container=docker
STOPSIGNAL SIGRTMIN+3
ENTRYPOINT [ "/usr/local/bin/entrypoint", "/sbin/init" ]
EOF
inputs=$(cd "$context" && find . -type f -print0 | sort -z | xargs -0 sha256sum | sha256sum | cut -c1-12)
node_image=kubeadm-recover/kind-node:$version-$inputs
if ! docker image inspect "$node_image" >/dev/null 2>&1; then
  say "building $node_image"
  docker build -q --build-arg "BASE=$base" -t "$node_image" "$context" >/dev/null
fi
# Earlier builds (other inputs) out of the engine's cache.
for old in $(docker images kubeadm-recover/kind-node --format '{{.Repository}}:{{.Tag}}'); do
  [ "$old" = "$node_image" ] || docker rmi "$old" >/dev/null || true
done
docker image prune -f >/dev/null

# 3. The load balancer: the same rootfs, and the stand-in for Envoy (standin-lb/) under the
# name and tag kind $kind_version runs.
lb_name=$(sed -n 's/^const Image = "\(.*\)"$/\1/p' "$kind_source/pkg/cluster/internal/loadbalancer/const.go")
[ -n "$lb_name" ] || die "kind $kind_version's load-balancer image name was not found in its source"
lb_context=$state/build/lb
rm -rf "$lb_context"
mkdir -p "$lb_context"
(cd tests/rehearsal && CGO_ENABLED=0 go build -trimpath -ldflags '-s -w' -o "$lb_context/envoy" ./standin-lb)
# shellcheck disable=SC2016 # the Dockerfile's own variable
printf 'ARG BASE\nFROM ${BASE}\nCOPY envoy /usr/local/bin/envoy\n' >"$lb_context/Dockerfile"
lb_inputs=$(sha256sum "$lb_context/envoy" | cut -c1-12)
if [ "$(docker image inspect -f '{{index .Config.Labels "inputs"}}' "$lb_name" 2>/dev/null)" != "$base-$lb_inputs" ]; then
  docker build -q --build-arg "BASE=$base" --label "inputs=$base-$lb_inputs" -t "$lb_name" "$lb_context" >/dev/null
fi
echo "$node_image"
echo "$lb_name"
