#!/usr/bin/env bash
# A one-node Kubernetes cluster on this machine, for `make e2e-cluster`: etcd, kube-apiserver,
# kube-controller-manager, kube-scheduler, containerd (its own config, root, state and socket),
# kubelet, kube-proxy (iptables), a CNI bridge whose address is the node IP, and kube-router's
# network-policy controller (--run-firewall only, a host process) enforcing NetworkPolicies, which
# the bridge alone does not. Needs root (and Debian's ipset for kube-router).
#
#   hack/cluster.sh up RUN_DIR LOG_DIR [IMAGE.tar...]   bring it up; images are imported into containerd
#   hack/cluster.sh down RUN_DIR                        tear everything down, then check nothing is left
#   hack/cluster.sh restart-apiserver RUN_DIR           stop kube-apiserver and start it again
#
# Every file is under RUN_DIR (removed by `down`) except the logs (LOG_DIR, kept). Only processes
# whose pid files are in RUN_DIR, or whose command line names RUN_DIR, or that sit in this run's
# cgroups are ever stopped. Pods reach nothing but the pod and service ranges and the node IP: the
# bridge has no masquerading, pods get no default route, and IP forwarding stays as it was.
# kubelet changes some sysctls, kubelet, kube-proxy and kube-router add iptables chains and
# kube-router ipsets: `down` puts back the values, rules and sets saved by `up`.
set -euo pipefail

top=$(cd "$(dirname "$0")/.." && pwd)

# Fixed names and ranges (one e2e cluster per machine); `up` refuses to run if they collide.
BRIDGE=${PODPRESET_CLUSTER_BRIDGE:-ppe2e0}
POD_CIDR=${PODPRESET_CLUSTER_POD_CIDR:-10.241.0.0/24}
NODE_IP=${PODPRESET_CLUSTER_NODE_IP:-10.241.0.1}
SERVICE_CIDR=${PODPRESET_CLUSTER_SERVICE_CIDR:-10.242.0.0/24}
KUBERNETES_SERVICE_IP=${PODPRESET_CLUSTER_KUBERNETES_IP:-10.242.0.1}
NODE_NAME=${PODPRESET_CLUSTER_NODE_NAME:-podpreset-e2e-node}
CGROUP=podpreset-e2e
PAUSE_IMAGE=${PAUSE_IMAGE:-registry.k8s.io/pause:3.10}
SYSCTLS=(vm.overcommit_memory vm.panic_on_oom kernel.panic kernel.panic_on_oops kernel.keys.root_maxkeys
  kernel.keys.root_maxbytes net.ipv4.ip_forward net.ipv4.conf.all.route_localnet
  net.bridge.bridge-nf-call-iptables net.bridge.bridge-nf-call-ip6tables)
# Paths kubelet and the CNI library write to whatever they are told (removed by `down` if `up` made them).
HOST_PATHS=(/var/lib/kubelet /var/lib/kubelet/device-plugins /var/log/containers /var/lib/cni)

log() { echo "cluster: $*" >&2; }
die() { echo "cluster: $*" >&2; exit 1; }
# shellcheck source=hack/lib/firewall.sh
. "$top/hack/lib/firewall.sh"

free_port() { python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'; }

wait_for() {  # wait_for SECONDS WHAT COMMAND...: poll COMMAND every 0.2 s
  local timeout=$1 what=$2 deadline
  shift 2
  deadline=$((SECONDS + timeout))
  until "$@" >/dev/null 2>&1; do
    [ $SECONDS -lt $deadline ] || { log "timed out after ${timeout}s waiting for $what"; return 1; }
    sleep 0.2
  done
}

start() {  # start NAME COMMAND...: run in the background, log to LOG_DIR/NAME.log, pid in RUN_DIR/pids
  local name=$1
  shift
  echo "=== $(date -u +%FT%TZ) starting: $*" >> "$LOGS/$name.log"
  setsid "$@" >> "$LOGS/$name.log" 2>&1 < /dev/null &
  echo $! > "$RUN/pids/$name"
}

alive() { [ -f "$RUN/pids/$1" ] && kill -0 "$(cat "$RUN/pids/$1")" 2>/dev/null; }

stop() {  # stop NAME [TIMEOUT]: SIGTERM the process of this run's pid file, SIGKILL after TIMEOUT
  local name=$1 timeout=${2:-30} pid deadline
  [ -f "$RUN/pids/$name" ] || return 0
  pid=$(cat "$RUN/pids/$name")
  if kill -0 "$pid" 2>/dev/null && tr '\0' ' ' < "/proc/$pid/cmdline" 2>/dev/null | grep -q -- "$RUN"; then
    kill -TERM "$pid" 2>/dev/null || true
    deadline=$((SECONDS + timeout))
    while kill -0 "$pid" 2>/dev/null && [ $SECONDS -lt $deadline ]; do sleep 0.2; done
    if kill -0 "$pid" 2>/dev/null; then
      log "$name did not exit within ${timeout}s of SIGTERM: SIGKILL"
      kill -KILL "$pid" 2>/dev/null || true
    fi
  fi
  rm -f "$RUN/pids/$name"
}

kc() { "$BIN/kubectl" --kubeconfig "$RUN/admin.kubeconfig" "$@"; }

# --- certificates -------------------------------------------------------------------------------

cert() {  # cert NAME SUBJECT [SANS] [EKU]: a key and certificate signed by the run's CA
  local name=$1 subject=$2 sans=${3:-} eku=${4:-clientAuth}
  openssl req -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes -keyout "$PKI/$name.key" \
    -out "$PKI/$name.csr" -subj "$subject" 2>/dev/null
  {
    echo "extendedKeyUsage=$eku"
    echo "keyUsage=critical,digitalSignature,keyEncipherment"
    [ -z "$sans" ] || echo "subjectAltName=$sans"
  } > "$PKI/$name.ext"
  openssl x509 -req -in "$PKI/$name.csr" -CA "$PKI/ca.crt" -CAkey "$PKI/ca.key" -set_serial "0x$(openssl rand -hex 16)" \
    -days 2 -extfile "$PKI/$name.ext" -out "$PKI/$name.crt" 2>/dev/null
}

kubeconfig() {  # kubeconfig NAME CERT: a kubeconfig for the API server with a client certificate
  cat > "$RUN/$1.kubeconfig" <<EOF
apiVersion: v1
kind: Config
clusters:
  - name: e2e
    cluster:
      server: https://$NODE_IP:$(cat "$RUN/apiserver-port")
      certificate-authority: $PKI/ca.crt
users:
  - name: $1
    user:
      client-certificate: $PKI/$2.crt
      client-key: $PKI/$2.key
contexts:
  - name: e2e
    context: {cluster: e2e, user: $1}
current-context: e2e
EOF
}

make_pki() {
  mkdir -p "$PKI"
  openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes -keyout "$PKI/ca.key" -out "$PKI/ca.crt" \
    -days 2 -subj "/CN=podpreset-e2e-ca" 2>/dev/null
  cert apiserver "/CN=kube-apiserver" \
    "IP:$NODE_IP,IP:127.0.0.1,IP:$KUBERNETES_SERVICE_IP,DNS:kubernetes,DNS:kubernetes.default,DNS:kubernetes.default.svc,DNS:kubernetes.default.svc.cluster.local,DNS:localhost" \
    serverAuth
  cert admin "/O=system:masters/CN=e2e-admin"
  cert apiserver-kubelet-client "/O=system:masters/CN=kube-apiserver-kubelet-client"
  cert controller-manager "/CN=system:kube-controller-manager"
  cert scheduler "/CN=system:kube-scheduler"
  cert proxy "/CN=system:kube-proxy"
  cert kubelet "/O=system:nodes/CN=system:node:$NODE_NAME"
  cert kubelet-serving "/CN=$NODE_NAME" "IP:$NODE_IP,DNS:$NODE_NAME" serverAuth
  openssl genrsa -out "$PKI/sa.key" 2048 2>/dev/null
  openssl rsa -in "$PKI/sa.key" -pubout -out "$PKI/sa.pub" 2>/dev/null
}

# --- host state saved by `up` and put back by `down` ---------------------------------------------

save_host_state() {
  mkdir -p "$RUN/host"
  local s
  for s in "${SYSCTLS[@]}"; do
    if v=$(sysctl -n "$s" 2>/dev/null); then printf '%s=%s\n' "$s" "$v"; fi
  done > "$RUN/host/sysctls"
  save_firewall "$RUN/host"
  ipset list -n 2>/dev/null | sort > "$RUN/host/ipsets" || true
  for p in "${HOST_PATHS[@]}"; do
    [ -e "$p" ] || echo "$p"
  done > "$RUN/host/created-paths"
  for p in /var/log/containers /var/lib/cni; do
    [ -e "$p" ] && find "$p" -mindepth 1 | sort
  done > "$RUN/host/existing-entries" || true
}

restore_host_state() {
  local line p
  if [ -f "$RUN/host/sysctls" ]; then
    while IFS= read -r line; do
      [ "$(sysctl -n "${line%%=*}" 2>/dev/null)" = "${line#*=}" ] || sysctl -q -w "$line" >/dev/null ||
        log "could not put back sysctl $line"
    done < "$RUN/host/sysctls"
  fi
  restore_firewall "$RUN/host"
  # kube-router's sets, once no rule refers to them.
  if [ -f "$RUN/host/ipsets" ]; then
    ipset list -n 2>/dev/null | sort | comm -23 - "$RUN/host/ipsets" | while IFS= read -r p; do
      ipset destroy "$p" 2>/dev/null || log "could not destroy ipset $p"
    done
  fi
  if [ -f "$RUN/host/existing-entries" ]; then
    for p in /var/log/containers /var/lib/cni; do
      [ -d "$p" ] || continue
      find "$p" -mindepth 1 -depth | sort -r | while IFS= read -r entry; do
        grep -qxF -- "$entry" "$RUN/host/existing-entries" || rm -rf -- "$entry"
      done
    done
  fi
  if [ -f "$RUN/host/created-paths" ]; then
    sort -r "$RUN/host/created-paths" | while IFS= read -r p; do rm -rf -- "$p"; done
  fi
}

# --- network ------------------------------------------------------------------------------------

check_ranges() {
  local cidr
  ! ip link show "$BRIDGE" >/dev/null 2>&1 || die "network device $BRIDGE already exists (another e2e cluster, or a leftover: hack/cluster.sh down RUN_DIR)"
  for cidr in "$POD_CIDR" "$SERVICE_CIDR"; do
    if ip -4 route show to match "${cidr%/*}" | grep -v '^default' | grep -q .; then
      die "the range $cidr collides with a route of this machine ($(ip -4 route show to match "${cidr%/*}" | grep -v '^default' | head -n 1)); set PODPRESET_CLUSTER_POD_CIDR/SERVICE_CIDR"
    fi
  done
}

make_network() {
  ip link add "$BRIDGE" type bridge
  ip addr add "$NODE_IP/${POD_CIDR#*/}" dev "$BRIDGE"
  ip link set "$BRIDGE" up
  # The host reaches Service IPs through the bridge (kube-proxy then DNATs them to pods).
  ip route add "$SERVICE_CIDR" dev "$BRIDGE" src "$NODE_IP"
  mkdir -p "$RUN/cni/net.d" "$RUN/cni/ipam"
  local prefix=${POD_CIDR%.*}
  cat > "$RUN/cni/net.d/10-podpreset-e2e.conflist" <<EOF
{
  "cniVersion": "0.4.0",
  "name": "podpreset-e2e",
  "plugins": [
    {
      "type": "bridge",
      "bridge": "$BRIDGE",
      "isGateway": false,
      "isDefaultGateway": false,
      "ipMasq": false,
      "hairpinMode": false,
      "ipam": {
        "type": "host-local",
        "dataDir": "$RUN/cni/ipam",
        "ranges": [[{"subnet": "$POD_CIDR", "rangeStart": "$prefix.10", "gateway": "$NODE_IP"}]],
        "routes": [{"dst": "$SERVICE_CIDR", "gw": "$NODE_IP"}]
      }
    }
  ]
}
EOF
}

# --- components ---------------------------------------------------------------------------------

start_etcd() {
  local client peer
  client=$(free_port)
  peer=$(free_port)
  echo "$client" > "$RUN/etcd-port"
  start etcd "$CP/etcd" --name=e2e --data-dir="$RUN/etcd" \
    --listen-client-urls="http://127.0.0.1:$client" --advertise-client-urls="http://127.0.0.1:$client" \
    --listen-peer-urls="http://127.0.0.1:$peer" --initial-advertise-peer-urls="http://127.0.0.1:$peer" \
    --initial-cluster="e2e=http://127.0.0.1:$peer" --unsafe-no-fsync=true --log-level=warn
  wait_for 60 "etcd" curl -fsS "http://127.0.0.1:$client/health"
}

start_apiserver() {
  local port
  port=$(cat "$RUN/apiserver-port")
  start kube-apiserver "$CP/kube-apiserver" \
    --etcd-servers="http://127.0.0.1:$(cat "$RUN/etcd-port")" \
    --bind-address="$NODE_IP" --advertise-address="$NODE_IP" --secure-port="$port" \
    --cert-dir="$RUN/apiserver-certs" \
    --tls-cert-file="$PKI/apiserver.crt" --tls-private-key-file="$PKI/apiserver.key" \
    --client-ca-file="$PKI/ca.crt" \
    --kubelet-client-certificate="$PKI/apiserver-kubelet-client.crt" \
    --kubelet-client-key="$PKI/apiserver-kubelet-client.key" \
    --kubelet-certificate-authority="$PKI/ca.crt" \
    --kubelet-preferred-address-types=InternalIP \
    --authorization-mode=Node,RBAC --enable-admission-plugins=NodeRestriction \
    --service-account-issuer="https://kubernetes.default.svc.cluster.local" \
    --service-account-key-file="$PKI/sa.pub" --service-account-signing-key-file="$PKI/sa.key" \
    --service-cluster-ip-range="$SERVICE_CIDR" --allow-privileged=true \
    --profiling=false --v=1
  wait_for 90 "kube-apiserver /readyz" kc get --raw /readyz
}

start_controllers() {
  start kube-controller-manager "$BIN/kube-controller-manager" \
    --kubeconfig="$RUN/controller-manager.kubeconfig" \
    --authentication-kubeconfig="$RUN/controller-manager.kubeconfig" \
    --authorization-kubeconfig="$RUN/controller-manager.kubeconfig" \
    --bind-address=127.0.0.1 --secure-port=0 --leader-elect=false \
    --use-service-account-credentials=true \
    --service-account-private-key-file="$PKI/sa.key" --root-ca-file="$PKI/ca.crt" \
    --cluster-signing-cert-file="$PKI/ca.crt" --cluster-signing-key-file="$PKI/ca.key" \
    --service-cluster-ip-range="$SERVICE_CIDR" --cluster-cidr="$POD_CIDR" --allocate-node-cidrs=false \
    --controllers='*,-nodeipam' --v=1
  start kube-scheduler "$BIN/kube-scheduler" \
    --kubeconfig="$RUN/scheduler.kubeconfig" \
    --authentication-kubeconfig="$RUN/scheduler.kubeconfig" \
    --authorization-kubeconfig="$RUN/scheduler.kubeconfig" \
    --bind-address=127.0.0.1 --secure-port=0 --leader-elect=false --v=1
}

start_containerd() {
  mkdir -p "$RUN/containerd"
  cat > "$RUN/containerd/config.toml" <<EOF
version = 2
root = "$RUN/containerd/root"
state = "$RUN/containerd/state"
plugin_dir = ""
disabled_plugins = ["io.containerd.snapshotter.v1.btrfs", "io.containerd.snapshotter.v1.zfs",
  "io.containerd.snapshotter.v1.aufs", "io.containerd.snapshotter.v1.devmapper"]
oom_score = 0

[grpc]
  address = "$RUN/containerd.sock"

[ttrpc]
  address = "$RUN/containerd.sock.ttrpc"

[debug]
  address = ""

[metrics]
  address = ""

[plugins."io.containerd.internal.v1.opt"]
  path = "$RUN/containerd/opt"

[plugins."io.containerd.grpc.v1.cri"]
  sandbox_image = "$PAUSE_IMAGE"
  restrict_oom_score_adj = true
  netns_mounts_under_state_dir = true
  stream_server_address = "127.0.0.1"
  stream_server_port = "0"
  enable_selinux = false
  disable_apparmor = true
  [plugins."io.containerd.grpc.v1.cri".containerd]
    snapshotter = "overlayfs"
    default_runtime_name = "runc"
    [plugins."io.containerd.grpc.v1.cri".containerd.runtimes.runc]
      runtime_type = "io.containerd.runc.v2"
      [plugins."io.containerd.grpc.v1.cri".containerd.runtimes.runc.options]
        SystemdCgroup = false
  [plugins."io.containerd.grpc.v1.cri".cni]
    bin_dir = "$CNI_BIN"
    conf_dir = "$RUN/cni/net.d"
    max_conf_num = 1
EOF
  start containerd containerd --config "$RUN/containerd/config.toml"
  wait_for 60 "containerd" ctr --address "$RUN/containerd.sock" version
}

import_images() {
  local image
  for image in "$@"; do
    log "importing $image"
    ctr --address "$RUN/containerd.sock" -n k8s.io images import --no-unpack "$image" >> "$LOGS/images.log" 2>&1 ||
      die "ctr images import $image failed; see $LOGS/images.log"
  done
  ctr --address "$RUN/containerd.sock" -n k8s.io images ls -q >> "$LOGS/images.log"
  ctr --address "$RUN/containerd.sock" -n k8s.io images ls -q | grep -qx "$PAUSE_IMAGE" ||
    die "the sandbox image $PAUSE_IMAGE is not among the imported images ($*)"
}

make_cgroups() {
  # kubelet's cgroupRoot: one directory per v1 hierarchy, so `down` finds (and removes) what this run made.
  local dir
  for dir in /sys/fs/cgroup/*/; do
    [ -f "$dir/cgroup.procs" ] || continue
    mkdir -p "$dir$CGROUP"
    if [ -f "$dir/cpuset.cpus" ]; then
      cat "$dir/cpuset.cpus" > "$dir$CGROUP/cpuset.cpus"
      cat "$dir/cpuset.mems" > "$dir$CGROUP/cpuset.mems"
    fi
  done
}

start_kubelet() {
  local port healthz
  port=$(free_port)
  healthz=$(free_port)
  echo "$port" > "$RUN/kubelet-port"
  mkdir -p "$RUN/kubelet/root" "$RUN/kubelet/manifests" "$RUN/kubelet/volume-plugins" "$LOGS/pods"
  mkdir -p /var/lib/kubelet/device-plugins /var/log/containers
  cat > "$RUN/kubelet/config.yaml" <<EOF
apiVersion: kubelet.config.k8s.io/v1beta1
kind: KubeletConfiguration
address: $NODE_IP
port: $port
readOnlyPort: 0
healthzBindAddress: 127.0.0.1
healthzPort: $healthz
tlsCertFile: $PKI/kubelet-serving.crt
tlsPrivateKeyFile: $PKI/kubelet-serving.key
authentication:
  anonymous: {enabled: false}
  webhook: {enabled: true}
  x509: {clientCAFile: $PKI/ca.crt}
authorization:
  mode: Webhook
containerRuntimeEndpoint: unix://$RUN/containerd.sock
imageServiceEndpoint: unix://$RUN/containerd.sock
cgroupDriver: cgroupfs
cgroupRoot: /$CGROUP
failCgroupV1: false
failSwapOn: false
staticPodPath: $RUN/kubelet/manifests
volumePluginDir: $RUN/kubelet/volume-plugins
podLogsDir: $LOGS/pods
resolvConf: ""
clusterDomain: cluster.local
maxPods: 250
serializeImagePulls: false
imageGCHighThresholdPercent: 100
imageGCLowThresholdPercent: 99
evictionHard:
  memory.available: "100Mi"
  nodefs.available: "1%"
  nodefs.inodesFree: "1%"
  imagefs.available: "1%"
protectKernelDefaults: false
syncFrequency: 10s
fileCheckFrequency: 5s
EOF
  start kubelet "$BIN/kubelet" --config="$RUN/kubelet/config.yaml" --kubeconfig="$RUN/kubelet.kubeconfig" \
    --root-dir="$RUN/kubelet/root" --cert-dir="$RUN/kubelet/pki" --node-ip="$NODE_IP" \
    --hostname-override="$NODE_NAME" --v=1
  wait_for 120 "node $NODE_NAME to be Ready" \
    bash -c "'$BIN/kubectl' --kubeconfig '$RUN/admin.kubeconfig' get node '$NODE_NAME' -o jsonpath='{.status.conditions[?(@.type==\"Ready\")].status}' | grep -qx True"
}

start_proxy() {
  cat > "$RUN/kube-proxy.yaml" <<EOF
apiVersion: kubeproxy.config.k8s.io/v1alpha1
kind: KubeProxyConfiguration
mode: iptables
clientConnection:
  kubeconfig: $RUN/proxy.kubeconfig
hostnameOverride: $NODE_NAME
bindAddress: $NODE_IP
clusterCIDR: $POD_CIDR
healthzBindAddress: 127.0.0.1:$(free_port)
metricsBindAddress: 127.0.0.1:$(free_port)
nodePortAddresses: ["$NODE_IP/32"]
conntrack:
  maxPerCore: 0
  min: 0
  tcpEstablishedTimeout: 0s
  tcpCloseWaitTimeout: 0s
iptables:
  localhostNodePorts: false
  masqueradeAll: false
EOF
  start kube-proxy "$BIN/kube-proxy" --config="$RUN/kube-proxy.yaml" --v=1
  # The `kubernetes` Service reachable through its ClusterIP means kube-proxy has written its rules.
  wait_for 60 "kube-proxy's rules for the kubernetes Service" \
    curl -fsS --cacert "$PKI/ca.crt" --cert "$PKI/admin.crt" --key "$PKI/admin.key" \
    "https://$KUBERNETES_SERVICE_IP/readyz"
}

start_netpol() {
  # NetworkPolicy only: no routing, no service proxy (kube-proxy does that), no CNI changes.
  start kube-router "$NETPOL" --kubeconfig="$RUN/admin.kubeconfig" --hostname-override="$NODE_NAME" \
    --run-firewall=true --run-router=false --run-service-proxy=false --enable-cni=false \
    --enable-ipv6=false --service-cluster-ip-range="$SERVICE_CIDR" --health-port=0 --metrics-port=0 --v=1
  wait_for 60 "kube-router's network policy chains" iptables -w -S KUBE-ROUTER-FORWARD
}

# --- commands -----------------------------------------------------------------------------------

setup_vars() {
  RUN=$(cd "$1" && pwd)
  PKI="$RUN/pki"
  LOGS=$(cat "$RUN/logs-dir" 2>/dev/null || echo "$RUN/logs")
  BIN=$(cat "$RUN/bin-dir" 2>/dev/null || true)
  CP=$(cat "$RUN/cp-dir" 2>/dev/null || true)
}

cmd_up() {
  [ $# -ge 2 ] || die "usage: $0 up RUN_DIR LOG_DIR [IMAGE.tar...]"
  local run=$1 logs=$2
  shift 2
  [ "$(id -u)" = 0 ] || die "needs root"
  mkdir -p "$run/pids" "$logs"
  setup_vars "$run"
  LOGS=$(cd "$logs" && pwd)
  echo "$LOGS" > "$RUN/logs-dir"
  CP=$("$top/hack/build-controlplane.sh" 2>> "$LOGS/build.log" | tail -n 1)
  BIN=$("$top/hack/build-cluster.sh" 2>> "$LOGS/build.log" | tail -n 1)
  echo "$CP" > "$RUN/cp-dir"
  echo "$BIN" > "$RUN/bin-dir"
  NETPOL=$("$top/hack/build-netpol.sh" 2>> "$LOGS/build.log" | tail -n 1)
  command -v ipset >/dev/null || die "kube-router needs ipset (Debian package ipset)"
  CNI_BIN=${CNI_BIN:-/usr/lib/cni}
  [ -x "$CNI_BIN/bridge" ] || die "no CNI bridge plugin in $CNI_BIN (Debian package containernetworking-plugins)"

  local t0=$SECONDS
  check_ranges
  save_host_state
  make_pki
  make_network
  free_port > "$RUN/apiserver-port"
  for pair in admin:admin controller-manager:controller-manager scheduler:scheduler proxy:proxy kubelet:kubelet; do
    kubeconfig "${pair%%:*}" "${pair#*:}"
  done
  start_etcd
  start_apiserver
  start_controllers
  start_containerd
  import_images "$@"
  make_cgroups
  start_kubelet
  start_proxy
  start_netpol
  wait_for 60 "the default ServiceAccount" kc -n default get serviceaccount default
  log "up in $((SECONDS - t0)) s: node $NODE_NAME ($NODE_IP), API server https://$NODE_IP:$(cat "$RUN/apiserver-port")"
  log "admin kubeconfig: $RUN/admin.kubeconfig; logs: $LOGS"
}

cmd_restart_apiserver() {
  setup_vars "$1"
  stop kube-apiserver 120
  start_apiserver
}

# Everything `up` started or made, in reverse; safe to run on a half-made run directory, and twice.
cmd_down() {
  [ $# -ge 1 ] || die "usage: $0 down RUN_DIR"
  [ -d "$1" ] || die "no run directory $1"
  setup_vars "$1"
  [ -f "$RUN/pids/.cluster" ] || [ -d "$RUN/pids" ] || die "$RUN is not a run directory of this script"
  local t0=$SECONDS
  # No controller recreates what is deleted, no scheduler places new pods; then kubelet stops every pod
  # (CNI DEL for each sandbox), so veths and IPs are released through the normal path.
  stop kube-controller-manager
  stop kube-scheduler
  if alive kube-apiserver && alive kubelet; then
    kc delete pods --all --all-namespaces --grace-period=1 --wait=false >/dev/null 2>&1 || true
    wait_for 90 "kubelet to stop every pod" bash -c \
      "! ctr --address '$RUN/containerd.sock' -n k8s.io tasks ls | grep -qw RUNNING" || true
    log "pods stopped after $((SECONDS - t0)) s"
  fi
  stop kube-router
  stop kube-proxy
  stop kubelet
  stop kube-apiserver 120
  stop etcd
  # Whatever kubelet left: kill the tasks, remove the containers (their shims then exit).
  if alive containerd; then
    local id
    for id in $(ctr --address "$RUN/containerd.sock" -n k8s.io tasks ls -q 2>/dev/null); do
      ctr --address "$RUN/containerd.sock" -n k8s.io tasks kill -s SIGKILL "$id" >/dev/null 2>&1 || true
    done
    sleep 1
    for id in $(ctr --address "$RUN/containerd.sock" -n k8s.io tasks ls -q 2>/dev/null); do
      ctr --address "$RUN/containerd.sock" -n k8s.io tasks delete -f "$id" >/dev/null 2>&1 || true
    done
    for id in $(ctr --address "$RUN/containerd.sock" -n k8s.io containers ls -q 2>/dev/null); do
      ctr --address "$RUN/containerd.sock" -n k8s.io containers delete "$id" >/dev/null 2>&1 || true
    done
  fi
  stop containerd
  kill_leftover_processes
  unmount_all
  if ip link show "$BRIDGE" >/dev/null 2>&1; then ip link delete "$BRIDGE"; fi
  # kube-proxy's own cleanup, then every rule and chain that was not there before `up`.
  if [ -n "$BIN" ] && [ -x "$BIN/kube-proxy" ] && [ -f "$RUN/host/iptables.rules" ]; then
    "$BIN/kube-proxy" --cleanup >> "$LOGS/kube-proxy.log" 2>&1 || true
  fi
  restore_host_state
  remove_cgroups
  log "down in $((SECONDS - t0)) s"
  if check_leftovers; then
    rm -rf "$RUN"
    log "teardown check: no process, mount, network device, iptables rule, ipset, cgroup or sysctl left behind"
  else
    log "teardown check FAILED (run directory kept: $RUN)"
    return 1
  fi
}

run_pids() {  # processes of this run: command line naming RUN (but not this script), or in its cgroups
  local f
  # One grep over every command line; the pattern comes on stdin so grep's own does not name RUN.
  printf '%s\n' "$RUN" | grep -lsF -f - /proc/[0-9]*/cmdline 2>/dev/null | while IFS= read -r f; do
    grep -qsF 'cluster.sh' "$f" || { f=${f#/proc/}; echo "${f%/cmdline}"; }
  done
  cat /sys/fs/cgroup/pids/"$CGROUP"/cgroup.procs /sys/fs/cgroup/pids/"$CGROUP"/*/cgroup.procs \
    /sys/fs/cgroup/pids/"$CGROUP"/*/*/cgroup.procs /sys/fs/cgroup/pids/"$CGROUP"/*/*/*/cgroup.procs 2>/dev/null || true
}

kill_leftover_processes() {
  local pids
  pids=$(run_pids | sort -u | grep -vx "$$" || true)
  [ -z "$pids" ] && return 0
  log "stopping leftover processes of this run: $(for p in $pids; do echo "$p:$(cat "/proc/$p/comm" 2>/dev/null)"; done | tr '\n' ' ')"
  kill -TERM $pids 2>/dev/null || true
  sleep 2
  pids=$(run_pids | sort -u | grep -vx "$$" || true)
  [ -z "$pids" ] || kill -KILL $pids 2>/dev/null || true
  sleep 0.5
}

run_mounts() { awk -v run="$RUN" 'index($5, run) == 1 {print $5}' /proc/self/mountinfo | sort -r; }

unmount_all() {
  local m
  for m in $(run_mounts); do umount "$m" 2>/dev/null || umount -l "$m" 2>/dev/null || log "could not unmount $m"; done
}

remove_cgroups() {
  local dir
  for dir in /sys/fs/cgroup/*/"$CGROUP"; do
    [ -d "$dir" ] || continue
    find "$dir" -depth -type d -exec rmdir {} \; 2>/dev/null || log "could not remove cgroup $dir"
  done
}

check_leftovers() {
  local ok=0 leftovers line
  leftovers=$(run_pids | sort -u | grep -vx "$$" || true)
  [ -z "$leftovers" ] || { log "leftover processes: $leftovers"; ok=1; }
  leftovers=$(run_mounts)
  [ -z "$leftovers" ] || { log "leftover mounts: $leftovers"; ok=1; }
  ! ip link show "$BRIDGE" >/dev/null 2>&1 || { log "leftover network device $BRIDGE"; ok=1; }
  leftovers=$(ip -br link show type veth 2>/dev/null | awk '{print $1}')
  [ -z "$leftovers" ] || { log "leftover veth devices: $leftovers"; ok=1; }
  ! ip route show | grep -q "$BRIDGE" || { log "leftover routes via $BRIDGE"; ok=1; }
  check_firewall "$RUN/host" || ok=1
  if [ -f "$RUN/host/ipsets" ] && ! diff "$RUN/host/ipsets" <(ipset list -n 2>/dev/null | sort) >&2; then
    log "ipsets differ from before the run"; ok=1
  fi
  if [ -f "$RUN/host/sysctls" ]; then
    while IFS= read -r line; do
      [ "$(sysctl -n "${line%%=*}" 2>/dev/null)" = "${line#*=}" ] || { log "sysctl ${line%%=*} is not back to ${line#*=}"; ok=1; }
    done < "$RUN/host/sysctls"
  fi
  leftovers=$(ls -d /sys/fs/cgroup/*/"$CGROUP" 2>/dev/null || true)
  [ -z "$leftovers" ] || { log "leftover cgroups: $leftovers"; ok=1; }
  if [ -f "$RUN/host/created-paths" ]; then
    while IFS= read -r line; do
      [ ! -e "$line" ] || { log "leftover path $line"; ok=1; }
    done < "$RUN/host/created-paths"
  fi
  return $ok
}

case "${1:-}" in
  up) shift; cmd_up "$@" ;;
  down) shift; cmd_down "$@" ;;
  restart-apiserver) shift; cmd_restart_apiserver "$@" ;;
  *) echo "usage: $0 up RUN_DIR LOG_DIR [IMAGE.tar...] | down RUN_DIR | restart-apiserver RUN_DIR" >&2; exit 2 ;;
esac
