#!/usr/bin/env bash
# A kind node image assembled offline: no registry, no `kind build node-image`, no Docker daemon.
#
#   hack/kind-node-image.sh [VERSION]    # VERSION: 1.37 or v1.37.2 (hack/k8s-versions.sh); empty: the newest
#
# Prints the image tarball (a docker-archive) on its last line and its name on the line before it;
# `docker load -i TARBALL` then `kind create cluster --image NAME`. For users who need kind where
# nothing can be pulled; with internet, use kind's own published kindest/node images.
#
# What goes in, the way kind's own build does it (kind v0.33.0's images/base/Dockerfile and
# pkg/build/nodeimage/buildcontext.go, read from the kind Go module):
# - layer 1: a Debian bookworm root made by mmdebstrap with systemd, dbus, containerd, runc, the CNI
#   plugins, iptables, ipset, conntrack and the rest kind's base lists, plus kind's base files
#   (entrypoint, containerd config, kubelet.service and its kubeadm/kind drop-ins, sysctls); the
#   services enabled and the wants cleared as kind's base does. Changed for this kind of host:
#   containerd runs without OOMScoreAdjust=-999 and with restrict_oom_score_adj (a node container has
#   no CAP_SYS_RESOURCE where the host lacks it), its binary is Debian's (1.6, CRI v1).
# - layer 2: kubeadm, kubelet and kubectl built from the Kubernetes Go module at VERSION
#   (hack/build-cluster.sh), /kind/version, and a containerd content store holding the images
#   `kubeadm config images list` names, built here: kube-apiserver, kube-controller-manager,
#   kube-scheduler (the binary on an empty root), kube-proxy (on a small Debian root with iptables
#   and conntrack), etcd (hack/build-controlplane.sh's), pause (hack/build-images.sh's). No coredns
#   image (nothing the e2e suite does needs cluster DNS): hack/kind/offline.yaml skips kubeadm's
#   addon/coredns phase.
# - The default CNI (/kind/manifests/default-cni.yaml, which kind applies unless disableDefaultCNI)
#   is not kindnetd but a DaemonSet of our own image: it writes a bridge + host-local + portmap
#   CNI config for the pod subnet and runs kube-router's network-policy controller (the enforcer
#   hack/cluster.sh runs, hack/build-netpol.sh's build). One node only: pods on other nodes are not
#   routed (kindnetd does that; it is not in a Go module kind's release can build offline).
#
# Cached by a hash of every input (ROOTFS, binaries, kind's files, this script): a rerun with nothing
# changed prints the cached tarball in seconds. Output: ~/.cache/podpreset/kind/ (KIND_NODE_CACHE).
# Needs root (mmdebstrap, a temporary containerd for the content store), Debian's mmdebstrap and
# containerd (installed with apt-get if missing), Go.
set -euo pipefail

top=$(cd "$(dirname "$0")/.." && pwd)
KIND_VERSION=${KIND_VERSION:-v0.33.0}
cache=${KIND_NODE_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/podpreset/kind}
python=${PYTHON:-python3}
pack=$top/hack/images/pack.py

log() { echo "kind-node-image: $*" >&2; }
die() { log "$*"; exit 1; }
hash_stdin() { sha256sum | cut -d' ' -f1; }

[ "$(id -u)" = 0 ] || die "needs root (mmdebstrap, and a temporary containerd to fill the image's content store)"

ensure_package() {  # ensure_package PACKAGE PATH
  [ -e "$2" ] && return 0
  log "installing Debian package $1 (for $2)"
  DEBIAN_FRONTEND=noninteractive apt-get install -y -q "$1" >&2 ||
    { apt-get update -q >&2 && DEBIAN_FRONTEND=noninteractive apt-get install -y -q "$1" >&2; } || die "cannot install $1"
}
ensure_package mmdebstrap /usr/bin/mmdebstrap
ensure_package containerd /usr/bin/containerd
ensure_package jq /usr/bin/jq

resolved=$("$top/hack/k8s-versions.sh" resolve "${1:-${K8S_VERSION:-}}")
eval "$resolved"
export K8S_VERSION

mkdir -p "$cache"
exec 9>"$cache/lock"
flock 9
start=$SECONDS

# --- inputs ----------------------------------------------------------------------------------------
kind_dir=$(cd / && GOFLAGS= GO111MODULE=on go mod download -json "sigs.k8s.io/kind@$KIND_VERSION" | jq -r .Dir)
[ -d "$kind_dir/images/base/files" ] || die "sigs.k8s.io/kind@$KIND_VERSION from the Go module proxy has no images/base/files"

# The Debian mirror this machine's apt uses, else deb.debian.org (as hack/build-images.sh).
debian_mirror() {
  local suffix=$1 uri
  uri=$(grep -hsE '^(URIs:|deb )' /etc/apt/sources.list /etc/apt/sources.list.d/*.list /etc/apt/sources.list.d/*.sources \
    | grep -oE "https?://[^ ]*/debian${suffix}/?( |$)" | head -n 1 | tr -d ' ')
  echo "${uri:-http://deb.debian.org/debian${suffix}}"
}
mirror=${DEBIAN_MIRROR:-$(debian_mirror "")}
security=${DEBIAN_SECURITY_MIRROR:-$(debian_mirror -security)}
sources=("deb $mirror bookworm main" "deb $mirror bookworm-updates main" "deb $security bookworm-security main")
common_options=(--variant=minbase --format=tar --hook-dir=/usr/share/mmdebstrap/hooks/merged-usr
  --aptopt='Acquire::Check-Valid-Until "false"'
  --dpkgopt='path-exclude=/usr/share/man/*' --dpkgopt='path-exclude=/usr/share/doc/*'
  --dpkgopt='path-include=/usr/share/doc/*/copyright' --dpkgopt='path-exclude=/usr/share/locale/*'
  --customize-hook='rm -rf "$1"/var/lib/apt/lists/* "$1"/var/cache/apt/* "$1"/var/log/*.log')

# kind's base image steps (images/base/Dockerfile), as an mmdebstrap customize hook: $1 is the root.
node_hook=$(cat <<EOF
set -e
r=\$1; f='$kind_dir/images/base/files'
install -d -m 0755 \$r/kind \$r/kind/bin \$r/etc/containerd \$r/etc/default \$r/etc/sysctl.d \$r/etc/systemd/system/kubelet.service.d \$r/LICENSES
install -m 0755 \$f/usr/local/bin/* \$r/usr/local/bin/
install -m 0644 \$f/kind/README.txt \$r/kind/
install -m 0755 \$f/kind/bin/* \$r/kind/bin/
install -m 0644 \$f/LICENSES/* \$r/LICENSES/
install -m 0644 \$f/etc/crictl.yaml \$r/etc/
install -m 0644 \$f/etc/containerd/* \$r/etc/containerd/
install -m 0644 \$f/etc/default/* \$r/etc/default/
install -m 0644 \$f/etc/sysctl.d/* \$r/etc/sysctl.d/
install -m 0644 \$f/etc/systemd/system/*.service \$f/etc/systemd/system/*.slice \$r/etc/systemd/system/
install -m 0644 \$f/etc/systemd/system/kubelet.service.d/* \$r/etc/systemd/system/kubelet.service.d/
# No CAP_SYS_RESOURCE in a node container on hosts like this: no negative OOM score adjustments.
sed -i '/^OOMScoreAdjust=/d' \$r/etc/systemd/system/containerd.service
sed -i 's/^\( *restrict_oom_score_adj\) = false/\1 = true/' \$r/etc/containerd/config.toml
grep -q 'restrict_oom_score_adj = true' \$r/etc/containerd/config.toml
ln -sf /usr/bin/containerd \$r/usr/local/bin/containerd
install -d -m 0755 \$r/opt/cni
ln -sfn /usr/lib/cni \$r/opt/cni/bin
chroot \$r ctr oci spec | jq '.hooks.createContainer[.hooks.createContainer | length] |= . + {"path": "/kind/bin/mount-product-files.sh"}' | jq 'del(.process.rlimits)' > \$r/etc/containerd/cri-base.json
find \$r/lib/systemd/system/sysinit.target.wants/ -name systemd-tmpfiles-setup.service -delete
rm -f \$r/lib/systemd/system/multi-user.target.wants/* \$r/etc/systemd/system/*.wants/* \$r/lib/systemd/system/local-fs.target.wants/*
rm -f \$r/lib/systemd/system/sockets.target.wants/*udev* \$r/lib/systemd/system/sockets.target.wants/*initctl* \$r/lib/systemd/system/basic.target.wants/*
echo ReadKMsg=no >> \$r/etc/systemd/journald.conf
ln -sf /usr/lib/systemd/systemd \$r/sbin/init
chroot \$r systemctl enable kubelet.service containerd.service undo-mount-hacks.service
chroot \$r systemctl mask systemd-binfmt.service
install -d -m 0755 \$r/etc/kubernetes/manifests
EOF
)
node_packages=systemd,dbus,containerd,runc,containernetworking-plugins,conntrack,iptables,nftables,ipset,iproute2,ethtool,util-linux,mount,kmod,libseccomp2,pigz,bash,ca-certificates,curl,jq,procps,socat
tools_packages=iptables,ipset,conntrack,kmod,iproute2

rootfs() {  # rootfs NAME PACKAGES [HOOK]: an mmdebstrap tarball, cached by its inputs; prints its path
  local name=$1 packages=$2 hook=${3:-} key out t0=$SECONDS
  local options=("${common_options[@]}" "--include=$packages")
  [ -z "$hook" ] || options+=("--customize-hook=$hook")
  key=$({ printf '%s\n' "${sources[@]}" "${options[@]}"; [ -z "$hook" ] || (cd "$kind_dir/images/base/files" && find . -type f | LC_ALL=C sort | xargs sha256sum); } | hash_stdin)
  out=$cache/$name-$key.tar
  if [ ! -s "$out" ]; then
    log "$name: mmdebstrap bookworm ($packages)"
    mmdebstrap --quiet "${options[@]}" bookworm "$cache/.$name.partial.tar" "${sources[@]}" > "$cache/$name.mmdebstrap.log" 2>&1 ||
      { tail -n 40 "$cache/$name.mmdebstrap.log" >&2; die "$name: mmdebstrap failed (log: $cache/$name.mmdebstrap.log)"; }
    rm -f "$cache/$name"-*.tar
    mv "$cache/.$name.partial.tar" "$out"
    log "$name: $(du -h "$out" | cut -f1) in $((SECONDS - t0)) s"
  fi
  echo "$out"
}

node_rootfs=$(rootfs node-rootfs "$node_packages" "$node_hook")
tools_rootfs=$(rootfs tools-rootfs "$tools_packages")
[ -z "${KIND_NODE_ROOTFS_ONLY:-}" ] || exit 0

log "Kubernetes $K8S_VERSION: building (or finding cached) kubeadm, kubelet, kubectl, the control plane, kube-router, pause"
bin=$("$top/hack/build-cluster.sh" kubeadm kubelet kubectl kube-proxy kube-controller-manager kube-scheduler | tail -n 1)
cp_dir=$("$top/hack/build-controlplane.sh" | tail -n 1)
netpol=$("$top/hack/build-netpol.sh" | tail -n 1)
images_dir=$("$top/hack/build-images.sh" pause | tail -n 1)
# shellcheck source=hack/images.env
. "$top/hack/images.env"

image_name="localhost/podpreset/kind-node:$K8S_VERSION"
key=$({
  echo "$K8S_VERSION $KIND_VERSION $image_name"
  basename "$node_rootfs"; basename "$tools_rootfs"
  sha256sum "$bin"/{kubeadm,kubelet,kubectl,kube-proxy,kube-controller-manager,kube-scheduler} "$cp_dir"/{kube-apiserver,etcd} "$netpol" \
    "$images_dir/$PAUSE_TARBALL" "$0" "$pack" "$top/hack/kind/default-cni.yaml" | cut -d' ' -f1
} | hash_stdin)
out=$cache/kind-node-$K8S_VERSION.tar
if [ -s "$out" ] && [ "$(cat "$out.key" 2>/dev/null)" = "$key" ]; then
  log "$image_name: cached ($out)"
  echo "$image_name"
  echo "$out"
  exit 0
fi
rm -f "$out.key"

# --- the images kubeadm asks for -------------------------------------------------------------------
work=$(mktemp -d "$cache/.build.XXXXXX")
containerd_pid=
cleanup() {
  if [ -n "$containerd_pid" ] && kill -0 "$containerd_pid" 2>/dev/null; then
    kill "$containerd_pid"; wait "$containerd_pid" 2>/dev/null || true
  fi
  awk -v w="$work" 'index($5, w) == 1 {print $5}' /proc/self/mountinfo | sort -r | xargs -r -n1 umount -l 2>/dev/null || true
  rm -rf "$work"
}
trap cleanup EXIT

mapfile -t wanted < <("$bin/kubeadm" config images list --kubernetes-version "$K8S_VERSION" 2>/dev/null)
[ ${#wanted[@]} -gt 0 ] || die "kubeadm config images list --kubernetes-version $K8S_VERSION printed nothing"
image_of() { printf '%s\n' "${wanted[@]}" | grep -E "/$1:" | head -n 1; }
mkdir -p "$work/images"
component_image() {  # component_image NAME BINARY [BASE_TAR]: NAME's image, the binary in /usr/local/bin
  local name=$1 binary=$2 base=${3:-} ref layer args=()
  ref=$(image_of "$name") || die "kubeadm names no $name image: ${wanted[*]}"
  layer=$work/layer-$name
  install -d -m 0755 "$layer/usr" "$layer/usr/local" "$layer/usr/local/bin" "$layer/tmp" "$layer/var" "$layer/var/run"
  chmod 1777 "$layer/tmp"
  install -m 0755 "$binary" "$layer/usr/local/bin/$name"
  [ -z "$base" ] || args+=(--layer-tar "$base")
  "$python" "$pack" --out "$work/images/$name.tar" --name "$ref" "${args[@]}" --layer-dir "$layer" >/dev/null
  rm -rf "$layer"
  log "image $ref"
}
component_image kube-apiserver "$cp_dir/kube-apiserver"
component_image kube-controller-manager "$bin/kube-controller-manager"
component_image kube-scheduler "$bin/kube-scheduler"
component_image kube-proxy "$bin/kube-proxy" "$tools_rootfs"
component_image etcd "$cp_dir/etcd"
pause_ref=$(image_of pause)
net_ref=localhost/podpreset/kind-net:$K8S_VERSION
layer=$work/layer-net
install -d -m 0755 "$layer/usr" "$layer/usr/local" "$layer/usr/local/bin"
install -m 0755 "$netpol" "$layer/usr/local/bin/kube-router"
"$python" "$pack" --out "$work/images/kind-net.tar" --name "$net_ref" --layer-tar "$tools_rootfs" --layer-dir "$layer" >/dev/null
rm -rf "$layer"

# --- layer 2: Kubernetes binaries, /kind files, the content store ------------------------------------
stage=$work/stage
install -d -m 0755 "$stage"
install -d -m 0755 "$stage/usr" "$stage/usr/bin" "$stage/kind" "$stage/kind/manifests" "$stage/var" "$stage/var/lib"
for tool in kubeadm kubelet kubectl; do install -m 0755 "$bin/$tool" "$stage/usr/bin/$tool"; done
printf '%s' "$K8S_VERSION" > "$stage/kind/version"
sed "s|@NET_IMAGE@|$net_ref|" "$top/hack/kind/default-cni.yaml" > "$stage/kind/manifests/default-cni.yaml"
chmod 0644 "$stage/kind/version" "$stage/kind/manifests/default-cni.yaml"

# A containerd of this run only (Debian's, the node's version) fills the node's /var/lib/containerd.
mkdir -p "$work/state"
cat > "$work/containerd.toml" <<EOF
version = 2
root = "$stage/var/lib/containerd"
state = "$work/state"
disabled_plugins = ["io.containerd.grpc.v1.cri", "io.containerd.snapshotter.v1.btrfs", "io.containerd.snapshotter.v1.zfs",
  "io.containerd.snapshotter.v1.aufs", "io.containerd.snapshotter.v1.devmapper"]
[grpc]
  address = "$work/containerd.sock"
[ttrpc]
  address = "$work/containerd.sock.ttrpc"
[debug]
  address = ""
[metrics]
  address = ""
[plugins."io.containerd.internal.v1.opt"]
  path = "$work/opt"
EOF
containerd --config "$work/containerd.toml" > "$work/containerd.log" 2>&1 &
containerd_pid=$!
for _ in $(seq 100); do ctr --address "$work/containerd.sock" version >/dev/null 2>&1 && break; sleep 0.2; done
ctr --address "$work/containerd.sock" version >/dev/null 2>&1 || { cat "$work/containerd.log" >&2; die "the temporary containerd did not start"; }
ctr_k8s() { ctr --address "$work/containerd.sock" -n k8s.io "$@"; }
for tarball in "$work"/images/*.tar "$images_dir/$PAUSE_TARBALL"; do
  ctr_k8s images import --no-unpack "$tarball" >/dev/null
done
# kubeadm's pause tag and the node's containerd sandbox_image may differ from ours: tag every name.
sandbox=$(sed -n 's/^ *sandbox_image = "\(.*\)"/\1/p' "$kind_dir/images/base/files/etc/containerd/config.toml")
for name in "$pause_ref" "$sandbox"; do
  [ -z "$name" ] || ctr_k8s images ls -q | grep -qx "$name" || ctr_k8s images tag "$PAUSE_IMAGE" "$name" >/dev/null
done
ctr_k8s images ls -q > "$work/imported"
for ref in "${wanted[@]}"; do
  case $ref in */coredns:*) continue ;; esac
  grep -qx "$ref" "$work/imported" || die "image $ref is missing from the node's content store"
done
kill "$containerd_pid"; wait "$containerd_pid" 2>/dev/null || true
containerd_pid=
rm -rf "$stage/var/lib/containerd/tmpmounts"
chmod 0711 "$stage/var/lib/containerd"

tar --sort=name --owner=0 --group=0 --numeric-owner --mtime=@946684800 -C "$stage" -cf "$work/layer2.tar" .
"$python" "$pack" --out "$work/node.tar" --name "$image_name" --layer-tar "$node_rootfs" --layer-tar "$work/layer2.tar" \
  --entrypoint '["/usr/local/bin/entrypoint", "/sbin/init"]' --env container=docker \
  --env PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin --env HTTP_PROXY= --env HTTPS_PROXY= --env NO_PROXY= \
  --stop-signal 'SIGRTMIN+3' >/dev/null
mv "$work/node.tar" "$out"
echo "$key" > "$out.key"
log "$image_name: $(du -h "$out" | cut -f1) in $((SECONDS - start)) s ($out; images: $(tr '\n' ' ' < "$work/imported"))"
echo "$image_name"
echo "$out"
