#!/usr/bin/env bash
# Build podpreset's images without a registry: docker-archive tarballs that `ctr -n k8s.io images
# import`, `kind load image-archive` and `docker load` accept. The names are in hack/images.env.
#
#   hack/build-images.sh                  # all: pause, testbox, webhook; prints the directory last
#   hack/build-images.sh pause testbox    # only those (the webhook needs root, mmdebstrap, buildah)
#
# pause    a static C program (hack/images/pause.c), packed by hack/images/pack.py
# testbox  Debian's busybox-static with its applets linked in /bin, packed the same way
# webhook  the top-level Dockerfile built by buildah on a stand-in for python:3.11-slim: Debian
#          bookworm (python3 3.11, python3-venv, ca-certificates) made by mmdebstrap, passed as
#          --build-arg BASE_IMAGE. Users build the same Dockerfile on python:3.11-slim.
#
# Each image is rebuilt only when the hash of its inputs changes (kept beside its tarball as
# NAME.key), so a warm rerun takes seconds. Outputs go to build/images/ (IMAGES_OUT); the
# stand-in base and buildah's storage are kept in ~/.cache/podpreset/images (IMAGES_CACHE).
# Missing Debian packages (gcc, libc6-dev, busybox-static, mmdebstrap, buildah) are installed
# with apt-get. Runs under a lock, so concurrent callers wait rather than race.
set -euo pipefail

top=$(cd "$(dirname "$0")/.." && pwd)
# shellcheck source=hack/images.env
source "$top/hack/images.env"
out=${IMAGES_OUT:-$top/build/images}
cache=${IMAGES_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/podpreset/images}
python=${PYTHON:-python3}
pack=$top/hack/images/pack.py
# buildah's storage driver: overlay where the kernel allows it, else vfs (set BUILDAH_DRIVER).
driver=${BUILDAH_DRIVER:-}

log() { echo "build-images: $*" >&2; }
die() { log "$*"; exit 1; }

sudo_cmd() { if [ "$(id -u)" = 0 ]; then "$@"; else sudo "$@"; fi; }

# ensure_package PACKAGE PATH: install PACKAGE with apt-get unless PATH exists.
ensure_package() {
  [ -e "$2" ] && return 0
  log "installing Debian package $1 (for $2)"
  command -v apt-get >/dev/null || die "$2 is missing and there is no apt-get to install $1"
  sudo_cmd env DEBIAN_FRONTEND=noninteractive apt-get install -y -q "$1" >&2 \
    || { sudo_cmd apt-get update -q >&2 && sudo_cmd env DEBIAN_FRONTEND=noninteractive apt-get install -y -q "$1" >&2; } \
    || die "cannot install $1"
}

hash_stdin() { sha256sum | cut -d' ' -f1; }

# fresh TARBALL KEY: the tarball exists and was built from inputs hashing to KEY (TARBALL.key).
fresh() { [ -s "$out/$1" ] && [ "$(cat "$out/$1.key" 2>/dev/null)" = "$2" ]; }
# done_with TARBALL KEY START: record the key; say the size and the time taken.
done_with() { echo "$2" > "$out/$1.key"; log "$1: $(du -h "$out/$1" | cut -f1) in $(( $(date +%s) - $3 )) s"; }

name_args() { local n; for n in "$@"; do printf -- '--name\n%s\n' "$n"; done; }

build_pause() {
  local start key stage
  start=$(date +%s)
  ensure_package gcc /usr/bin/gcc
  ensure_package libc6-dev /usr/include/stdio.h
  key=$({ cat "$top/hack/images/pause.c" "$pack"; gcc --version | head -n 1; echo "$PAUSE_IMAGE $PAUSE_ALIASES"; } | hash_stdin)
  if fresh "$PAUSE_TARBALL" "$key"; then log "pause: cached"; return; fi
  rm -f "$out/$PAUSE_TARBALL.key"
  stage=$(mktemp -d "$out/.pause.XXXXXX")
  gcc -static -Os -s -Wall -Wextra -Werror -o "$stage/pause" "$top/hack/images/pause.c"
  # shellcheck disable=SC2046,SC2086
  "$python" "$pack" --out "$out/$PAUSE_TARBALL" $(name_args "$PAUSE_IMAGE" $PAUSE_ALIASES) \
    --layer-dir "$stage" --entrypoint '["/pause"]' --user 65535:65535 --env PATH=/ >/dev/null
  rm -rf "$stage"
  done_with "$PAUSE_TARBALL" "$key" "$start"
}

build_testbox() {
  local start key stage applet
  start=$(date +%s)
  ensure_package busybox-static /usr/share/doc/busybox-static
  key=$({ sha256sum /bin/busybox; cat "$pack"; echo "$TESTBOX_IMAGE"; } | hash_stdin)
  if fresh "$TESTBOX_TARBALL" "$key"; then log "testbox: cached"; return; fi
  rm -f "$out/$TESTBOX_TARBALL.key"
  stage=$(mktemp -d "$out/.testbox.XXXXXX")
  mkdir -p "$stage/bin" "$stage/usr/bin" "$stage/etc" "$stage/tmp" "$stage/root"
  chmod 1777 "$stage/tmp"
  chmod 0755 "$stage" "$stage/bin" "$stage/usr" "$stage/usr/bin" "$stage/etc"
  chmod 0700 "$stage/root"
  install -m 0755 /bin/busybox "$stage/bin/busybox"
  for applet in $(/bin/busybox --list); do
    [ "$applet" = busybox ] || ln -s busybox "$stage/bin/$applet"
  done
  ln -s ../../bin/busybox "$stage/usr/bin/env"
  printf 'root:x:0:0:root:/root:/bin/sh\nnobody:x:65534:65534:nobody:/nonexistent:/bin/false\n' > "$stage/etc/passwd"
  printf 'root:x:0:\nnogroup:x:65534:\n' > "$stage/etc/group"
  chmod 0644 "$stage/etc/passwd" "$stage/etc/group"
  "$python" "$pack" --out "$out/$TESTBOX_TARBALL" --name "$TESTBOX_IMAGE" --layer-dir "$stage" \
    --cmd '["sh"]' --env PATH=/bin:/usr/bin >/dev/null
  rm -rf "$stage"
  done_with "$TESTBOX_TARBALL" "$key" "$start"
}

# The Debian mirror this machine's apt uses (deb822 or one-line sources), else deb.debian.org.
debian_mirror() {
  local suffix=$1 uri
  uri=$(grep -hsE '^(URIs:|deb )' /etc/apt/sources.list /etc/apt/sources.list.d/*.list /etc/apt/sources.list.d/*.sources \
    | grep -oE "https?://[^ ]*/debian${suffix}/?( |$)" | head -n 1 | tr -d ' ')
  echo "${uri:-http://deb.debian.org/debian${suffix}}"
}

# The stand-in base's inputs (set as globals): apt sources, packages, mmdebstrap's options.
# The root filesystem (mmdebstrap's tarball, the slow part) is cached by their hash alone.
base_inputs() {
  local mirror security
  mirror=${DEBIAN_MIRROR:-$(debian_mirror "")}
  security=${DEBIAN_SECURITY_MIRROR:-$(debian_mirror -security)}
  base_sources=("deb $mirror bookworm main" "deb $mirror bookworm-updates main" "deb $security bookworm-security main")
  # Like the slim Python images: no docs (but copyrights), man pages or locales, no apt lists.
  # merged-/usr made by mmdebstrap's hook rather than the usrmerge package (which pulls in perl).
  # Valid-Until is not checked, as this machine's apt does not: a snapshot mirror's Release
  # files may be past it.
  base_options=(--variant=minbase --include=python3,python3-venv,ca-certificates --format=tar
    --hook-dir=/usr/share/mmdebstrap/hooks/merged-usr
    --aptopt='Acquire::Check-Valid-Until "false"'
    --dpkgopt='path-exclude=/usr/share/man/*' --dpkgopt='path-exclude=/usr/share/doc/*'
    --dpkgopt='path-include=/usr/share/doc/*/copyright' --dpkgopt='path-exclude=/usr/share/locale/*'
    --dpkgopt='path-exclude=/usr/share/info/*'
    --customize-hook='rm -rf "$1"/var/lib/apt/lists/* "$1"/var/cache/apt/* "$1"/var/log/*.log')
  base_key=$(printf '%s\n' "${base_sources[@]}" "${base_options[@]}" | hash_stdin)
  base_rootfs=$cache/rootfs-$base_key.tar
}

# The stand-in base as a docker-archive named $BASE_IMAGE (printed), its root made when missing.
build_base() {
  local start
  if [ ! -s "$base_rootfs" ]; then
    start=$(date +%s)
    [ "$(id -u)" = 0 ] || die "webhook: the stand-in base is made with mmdebstrap as root; run as root"
    ensure_package mmdebstrap /usr/bin/mmdebstrap
    log "base: mmdebstrap bookworm (python3, python3-venv, ca-certificates) from ${base_sources[0]#deb }"
    mmdebstrap --quiet "${base_options[@]}" bookworm "$cache/.rootfs.partial.tar" "${base_sources[@]}" \
      > "$cache/mmdebstrap.log" 2>&1 || { tail -n 40 "$cache/mmdebstrap.log" >&2; die "base: mmdebstrap failed"; }
    rm -f "$cache"/rootfs-*.tar  # an older key's
    mv "$cache/.rootfs.partial.tar" "$base_rootfs"
    log "base: root filesystem $(du -h "$base_rootfs" | cut -f1) in $(( $(date +%s) - start )) s"
  fi
  "$python" "$pack" --out "$cache/base.tar" --name "$BASE_IMAGE" --layer-tar "$base_rootfs" --cmd '["python3"]' >/dev/null
  echo "$cache/base.tar"
}

# Files of the build context: what .dockerignore lets in (it lists them as `!` exceptions).
context_hash() {
  local include
  mapfile -t include < <(sed -n 's/^!//p' "$top/.dockerignore")
  [ ${#include[@]} -gt 0 ] || die ".dockerignore: expected the context's files as '!' exceptions"
  (cd "$top" && find "${include[@]}" -type f ! -path '*/__pycache__/*' ! -name '*.pyc' -print0 \
    | LC_ALL=C sort -z | xargs -0 sha256sum) | hash_stdin
}

buildah_cmd() { buildah --root "$cache/storage" --runroot "$cache/run" --storage-driver "$driver" "$@"; }

# buildah's storage driver: overlay where the kernel allows it (tried once, the answer kept in
# the cache), else vfs (copies every layer; slower and larger). BUILDAH_DRIVER overrides.
pick_driver() {
  if [ -n "$driver" ]; then return 0; fi
  if [ -s "$cache/driver" ]; then driver=$(cat "$cache/driver"); return 0; fi
  local error
  driver=overlay
  if ! error=$({ buildah_cmd pull --quiet "docker-archive:$base_tar" >/dev/null \
    && buildah_cmd from --pull-never --name podpreset-probe "$BASE_IMAGE" >/dev/null \
    && buildah_cmd run --isolation chroot podpreset-probe -- true; } 2>&1); then
    log "buildah: overlay storage does not work here, using vfs: ${error##*$'\n'}"
    driver=vfs
  fi
  buildah_cmd rm podpreset-probe >/dev/null 2>&1 || true
  echo "$driver" > "$cache/driver"
}

build_webhook() {
  local start key ca_args=()
  start=$(date +%s)
  base_inputs
  key=$({ echo "$base_key"; cat "$pack"; cat "$top/Dockerfile" "$top/.dockerignore"; context_hash; echo "$WEBHOOK_IMAGE"; } | hash_stdin)
  if fresh "$WEBHOOK_TARBALL" "$key"; then log "webhook: cached"; return; fi
  rm -f "$out/$WEBHOOK_TARBALL.key"
  [ "$(id -u)" = 0 ] || die "webhook: building with buildah needs root here"
  ensure_package buildah /usr/bin/buildah
  base_tar=$(build_base)
  pick_driver
  buildah_cmd pull --quiet "docker-archive:$base_tar" >/dev/null
  # pip inside the build trusts what this machine trusts (a proxy's CA, say): the host's bundle
  # is mounted for the RUN steps only, never copied into a layer.
  if [ -s /etc/ssl/certs/ca-certificates.crt ]; then
    ca_args=(--volume /etc/ssl/certs/ca-certificates.crt:/etc/ssl/certs/ca-certificates.crt:ro)
  fi
  log "webhook: buildah bud (storage $driver) on $BASE_IMAGE"
  buildah_cmd bud --quiet --isolation chroot --pull-never --layers=false \
    --build-arg "BASE_IMAGE=$BASE_IMAGE" "${ca_args[@]}" \
    --tag "$WEBHOOK_IMAGE" --file "$top/Dockerfile" "$top" >&2
  rm -f "$out/$WEBHOOK_TARBALL"
  buildah_cmd push --quiet "$WEBHOOK_IMAGE" "docker-archive:$out/$WEBHOOK_TARBALL:$WEBHOOK_IMAGE" >&2
  # Keep the base (cached) but not the built image, whose tarball is the output, nor an older base.
  buildah_cmd rmi "$WEBHOOK_IMAGE" >/dev/null 2>&1 || true
  buildah_cmd rmi --prune >/dev/null 2>&1 || true
  done_with "$WEBHOOK_TARBALL" "$key" "$start"
}

main() {
  local targets=("$@") target
  [ ${#targets[@]} -gt 0 ] || targets=(pause testbox webhook)
  mkdir -p "$out" "$cache"
  exec 9>"$cache/lock"
  flock 9
  for target in "${targets[@]}"; do
    case $target in
      pause | testbox | webhook) "build_$target" ;;
      *) die "unknown image $target (pause, testbox, webhook)" ;;
    esac
  done
  echo "$out"
}

main "$@"; exit
