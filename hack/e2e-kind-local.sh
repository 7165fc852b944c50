#!/usr/bin/env bash
# make e2e-kind-local: make e2e-kind on this machine, where there is no Docker engine and no
# registry. Installs Debian's docker.io if missing, starts a dockerd for this run only, builds kind
# from its Go module (cached), assembles the node image offline (hack/kind-node-image.sh, cached),
# builds podpreset's images from the Dockerfile (hack/build-images.sh), runs exactly `make e2e-kind`
# against them, then stops dockerd and removes everything the run made, and checks that nothing is
# left (fails otherwise), as hack/cluster.sh down does for make e2e-cluster. Needs Linux and root.
#
# The dockerd of the run:
# - everything of its own under one run directory (data root, exec root, pid file, socket; its
#   containerd's too) and its containers' cgroups under /podpreset-kind; nothing else of the host's
#   Docker (if any) is touched, and no systemd unit is started;
# - no default bridge, no iptables rules, no masquerading, IP forwarding left as it is
#   (--bridge=none --iptables=false --ip-masq=false --ip-forward=false); the `kind` network is made
#   here with a bridge of a fixed name (ppkind0), and a chain of ours in FORWARD drops whatever comes
#   from it for anywhere else: node containers reach this host (the API server's published port, the
#   tests' own webhooks on the gateway address) and nothing beyond it;
# - nothing can be pulled: its HTTP(S) proxy is a closed port on 127.0.0.1, so a registry lookup
#   fails here instead of leaving the machine (every image it runs is loaded from a tarball);
# - a runtime wrapper in front of runc removes CAP_SYS_RESOURCE from every container's and every
#   exec's capabilities: kind runs its nodes --privileged, which asks for all of them, and this
#   host's bounding set lacks that one (runc then fails "unable to apply caps: operation not
#   permitted"). See docs/operations.md.
# Logs: build/e2e-kind/<time>/ (dockerd.log beside make e2e-kind's own).
set -euo pipefail

top=$(cd "$(dirname "$0")/.." && pwd)
KIND_VERSION=${KIND_VERSION:-v0.33.0}
cache=${XDG_CACHE_HOME:-$HOME/.cache}/podpreset
BRIDGE=ppkind0
CHAIN=PODPRESET-KIND
CGROUP=podpreset-kind
SUBNET=${PODPRESET_KIND_SUBNET:-10.243.0.0/24}

log() { echo "e2e-kind-local: $*" >&2; }
die() { log "$*"; exit 1; }
# shellcheck source=hack/lib/firewall.sh
. "$top/hack/lib/firewall.sh"

[ "$(uname -s)" = Linux ] || die "needs Linux (this is $(uname -s)); with Docker and kind, use make e2e-kind"
[ "$(id -u)" = 0 ] || die "needs root: it runs dockerd, makes a network bridge and an iptables chain (all removed afterwards)"

# shellcheck source=hack/lib/timed.sh
. "$top/hack/lib/timed.sh"
run_logs "${E2E_KIND_LOGS:-$top/build/e2e-kind/$(date -u +%Y%m%dT%H%M%SZ)}" timings-local.txt

# --- tools ---------------------------------------------------------------------------------------
missing=()
command -v dockerd >/dev/null && [ -x /usr/bin/docker ] || missing+=(docker.io)
command -v jq >/dev/null || missing+=(jq)
command -v iptables >/dev/null || missing+=(iptables)
if [ ${#missing[@]} -gt 0 ]; then
  log "installing Debian packages: ${missing[*]}"
  apt-get update -q >&2
  DEBIAN_FRONTEND=noninteractive apt-get install -y -q "${missing[@]}" >&2
fi

build_kind() {
  local dir="$cache/kind/$KIND_VERSION"
  if [ -x "$dir/kind" ] && "$dir/kind" version 2>/dev/null | grep -q "kind $KIND_VERSION "; then
    echo "$dir"; return
  fi
  log "building kind $KIND_VERSION from the Go module proxy"
  mkdir -p "$dir"
  (cd / && GOBIN="$dir" CGO_ENABLED=0 GOFLAGS= GO111MODULE=on go install "sigs.k8s.io/kind@$KIND_VERSION") >&2
  echo "$dir"
}
timed "build kind $KIND_VERSION" build_kind > "$logs/kind-dir"
kind_dir=$(tail -n 1 "$logs/kind-dir")
timed "assemble the kind node image (hack/kind-node-image.sh)" \
  bash -c "'$top/hack/kind-node-image.sh' '${K8S_VERSION:-}' > '$logs/node-image' 2> '$logs/node-image.log'" ||
  { tail -n 30 "$logs/node-image.log" >&2; exit 1; }
node_image=$(tail -n 2 "$logs/node-image" | head -n 1)
node_tar=$(tail -n 1 "$logs/node-image")
timed "build podpreset's images (hack/build-images.sh)" \
  bash -c "'$top/hack/build-images.sh' testbox webhook > '$logs/images-dir' 2> '$logs/images-build.log'"
images_dir=$(tail -n 1 "$logs/images-dir")
kubectl_dir=$("$top/hack/build-cluster.sh" kubectl 2>/dev/null | tail -n 1)
# shellcheck source=hack/images.env
. "$top/hack/images.env"

# --- host state, to check against afterwards ----------------------------------------------------------
run=$(mktemp -d /tmp/ppkind.XXXXXX)  # short: the docker and containerd sockets live here
data_root="$cache/kind/docker-run"   # dockerd's data root (overlay2 layers), removed afterwards
save_state() {
  save_firewall "$run"
  ip -o link show | awk -F': ' '{print $2}' | sed 's/@.*//' | sort > "$run/links.before"
  sysctl -n net.ipv4.ip_forward > "$run/ip_forward.before"
}
[ ! -e "$data_root" ] || die "$data_root exists: a previous run was not cleaned up; remove it (after checking no dockerd uses it)"
! ip link show "$BRIDGE" >/dev/null 2>&1 || die "network device $BRIDGE exists (a leftover of a previous run?)"
! iptables -w -S "$CHAIN" >/dev/null 2>&1 || die "iptables chain $CHAIN exists (a leftover of a previous run?)"
if ip -4 route show to match "${SUBNET%/*}" | grep -v '^default' | grep -q .; then
  die "the range $SUBNET collides with a route of this machine; set PODPRESET_KIND_SUBNET"
fi
save_state

dockerd_pid=
teardown() {
  local t0=$SECONDS ok=0 m
  export DOCKER_HOST="unix://$run/docker.sock"
  if [ -n "$dockerd_pid" ] && kill -0 "$dockerd_pid" 2>/dev/null; then
    "$kind_dir/kind" delete cluster --name "${KIND_CLUSTER:-podpreset-e2e}" >/dev/null 2>&1 || true
    /usr/bin/docker ps -aq | xargs -r /usr/bin/docker rm -f -v >/dev/null 2>&1 || true
    /usr/bin/docker network rm kind >/dev/null 2>&1 || true
    kill -TERM "$dockerd_pid" 2>/dev/null || true
    for _ in $(seq 150); do kill -0 "$dockerd_pid" 2>/dev/null || break; sleep 0.2; done
    kill -0 "$dockerd_pid" 2>/dev/null && { log "dockerd did not stop within 30 s: SIGKILL"; kill -KILL "$dockerd_pid" || true; }
  fi
  # Whatever still names the run (its containerd, shims) is stopped.
  pids=$(printf '%s\n%s\n' "$run" "$data_root" | grep -lsF -f - /proc/[0-9]*/cmdline 2>/dev/null | sed 's|/proc/||; s|/cmdline||' | grep -vx "$$" || true)
  [ -z "$pids" ] || { kill -KILL $pids 2>/dev/null || true; sleep 0.5; }
  for m in $(awk -v a="$run" -v b="$data_root" 'index($5, a) == 1 || index($5, b) == 1 {print $5}' /proc/self/mountinfo | sort -r); do
    umount "$m" 2>/dev/null || umount -l "$m" 2>/dev/null || log "could not unmount $m"
  done
  if ip link show "$BRIDGE" >/dev/null 2>&1; then ip link delete "$BRIDGE"; fi
  # Leftover veths of this run's containers (their peers went with the containers' namespaces).
  comm -13 "$run/links.before" <(ip -o link show | awk -F': ' '{print $2}' | sed 's/@.*//' | sort) | grep '^veth' |
    while read -r link; do ip link delete "$link" 2>/dev/null || true; done
  while iptables -w -D FORWARD -j "$CHAIN" 2>/dev/null; do :; done
  iptables -w -F "$CHAIN" 2>/dev/null || true
  iptables -w -X "$CHAIN" 2>/dev/null || true
  # Docker may still set FORWARD's policy to DROP and add its chains on start, and iptables -N made
  # `ip filter` if it was not there: put back what was there.
  restore_firewall "$run"
  [ "$(sysctl -n net.ipv4.ip_forward)" = "$(cat "$run/ip_forward.before")" ] || sysctl -q -w "net.ipv4.ip_forward=$(cat "$run/ip_forward.before")"
  for dir in /sys/fs/cgroup/*/"$CGROUP"; do
    [ -d "$dir" ] && find "$dir" -depth -type d -exec rmdir {} \; 2>/dev/null || true
  done
  rm -rf "$data_root"
  log "teardown in $((SECONDS - t0)) s"

  # The check: nothing of the run left.
  pids=$(printf '%s\n%s\n' "$run" "$data_root" | grep -lsF -f - /proc/[0-9]*/cmdline 2>/dev/null | sed 's|/proc/||; s|/cmdline||' | grep -vx "$$" || true)
  [ -z "$pids" ] || { log "leftover processes: $pids"; ok=1; }
  m=$(awk -v a="$run" -v b="$data_root" 'index($5, a) == 1 || index($5, b) == 1 {print $5}' /proc/self/mountinfo)
  [ -z "$m" ] || { log "leftover mounts: $m"; ok=1; }
  m=$(comm -13 "$run/links.before" <(ip -o link show | awk -F': ' '{print $2}' | sed 's/@.*//' | sort))
  [ -z "$m" ] || { log "leftover network devices: $m"; ok=1; }
  check_firewall "$run" || ok=1
  [ "$(sysctl -n net.ipv4.ip_forward)" = "$(cat "$run/ip_forward.before")" ] || { log "net.ipv4.ip_forward changed"; ok=1; }
  m=$(ls -d /sys/fs/cgroup/*/"$CGROUP" /sys/fs/cgroup/*/docker 2>/dev/null || true)
  [ -z "$m" ] || { log "leftover cgroups: $m"; ok=1; }
  [ ! -e "$data_root" ] || { log "leftover $data_root"; ok=1; }
  if [ $ok = 0 ]; then
    rm -rf "$run"
    log "teardown check: no process, mount, network device, iptables rule or chain, cgroup or sysctl left behind"
  else
    log "teardown check FAILED (state kept in $run)"
  fi
  return $ok
}

on_exit() {
  local status=$?
  trap - EXIT INT TERM
  teardown || status=1
  log "logs in $logs"
  cat "$timings" >&2
  exit $status
}
trap on_exit EXIT
trap 'exit 130' INT TERM

# --- dockerd of this run ------------------------------------------------------------------------------
cat > "$run/runc-nosysresource" <<'EOF'
#!/bin/sh
# runc without CAP_SYS_RESOURCE: removed from the bundle's config.json (create, run) or the
# process JSON (exec) before runc sees it; this host's capability bounding set lacks it.
bundle=; process=; sub=; prev=
for arg in "$@"; do
  case $prev in --bundle | -b) bundle=$arg ;; --process | -p) process=$arg ;; esac
  case $arg in
    --bundle=*) bundle=${arg#--bundle=} ;;
    --process=*) process=${arg#--process=} ;;
    create | run | exec) [ -n "$sub" ] || sub=$arg ;;
  esac
  prev=$arg
done
strip() {  # strip FILE JQ_PATH
  jq -c "if $2 then $2 |= with_entries(.value |= (if type == \"array\" then map(select(. != \"CAP_SYS_RESOURCE\")) else . end)) else . end" "$1" > "$1.nosysres" &&
    mv "$1.nosysres" "$1"
}
case $sub in
  create | run) strip "${bundle:-.}/config.json" .process.capabilities ;;
  exec) [ -z "$process" ] || strip "$process" .capabilities ;;
esac
exec /usr/sbin/runc "$@"
EOF
chmod 0755 "$run/runc-nosysresource"
echo '{}' > "$run/daemon.json"
mkdir -p "$data_root"
log "starting dockerd (data root $data_root, socket $run/docker.sock)"
HTTP_PROXY=http://127.0.0.1:9 HTTPS_PROXY=http://127.0.0.1:9 NO_PROXY= http_proxy= https_proxy= no_proxy= \
  setsid dockerd --config-file "$run/daemon.json" --data-root "$data_root" --exec-root "$run/exec" \
  --pidfile "$run/dockerd.pid" -H "unix://$run/docker.sock" --bridge=none --iptables=false --ip6tables=false \
  --ip-masq=false --ip-forward=false --cgroup-parent "/$CGROUP" --storage-driver overlay2 \
  --add-runtime "podpreset-runc=$run/runc-nosysresource" --default-runtime podpreset-runc \
  > "$logs/dockerd.log" 2>&1 < /dev/null &
dockerd_pid=$!
export DOCKER_HOST="unix://$run/docker.sock"
for _ in $(seq 150); do /usr/bin/docker version >/dev/null 2>&1 && break; sleep 0.2; done
/usr/bin/docker version >/dev/null || { tail -n 20 "$logs/dockerd.log" >&2; die "dockerd did not start"; }

# The kind network, made here (kind uses an existing one by name): a fixed bridge name, no
# masquerading, and nothing from it forwarded anywhere off this host.
/usr/bin/docker network create -d bridge --subnet "$SUBNET" --gateway "${SUBNET%.*}.1" -o com.docker.network.bridge.name="$BRIDGE" \
  -o com.docker.network.bridge.enable_ip_masquerade=false kind >/dev/null
iptables -w -N "$CHAIN"
iptables -w -A "$CHAIN" -i "$BRIDGE" ! -o "$BRIDGE" -j DROP
iptables -w -A "$CHAIN" -o "$BRIDGE" ! -i "$BRIDGE" -j DROP
iptables -w -I FORWARD 1 -j "$CHAIN"

timed "docker load the node image" /usr/bin/docker load -i "$node_tar" >/dev/null

# --- make e2e-kind --------------------------------------------------------------------------------------
bindir="$run/bin"
mkdir -p "$bindir"
ln -s /usr/bin/docker "$bindir/docker"  # Debian's client, the daemon's version
ln -s "$kind_dir/kind" "$bindir/kind"
ln -s "$kubectl_dir/kubectl" "$bindir/kubectl"
timed "make e2e-kind" env PATH="$bindir:$PATH" E2E_KIND_LOGS="$logs" KIND_NODE_IMAGE="$node_image" \
  KIND_CONFIG="$top/hack/kind/offline.yaml" \
  PODPRESET_E2E_IMAGES="$images_dir/$WEBHOOK_TARBALL $images_dir/$TESTBOX_TARBALL" \
  PODPRESET_E2E_TEST_IMAGE="$TESTBOX_IMAGE" \
  make -C "$top" --no-print-directory e2e-kind
