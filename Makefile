# podpreset — every target sets up what it needs on a fresh machine with Python 3.11 (and Go for e2e).
SHELL := /bin/bash
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed-stamp
BIND ?= 127.0.0.1:8443
HEALTH_BIND ?= 127.0.0.1:8080
CERTS := build/dev-certs
# make bench QUICK=1: every scenario briefly (under a minute).
QUICK ?=
BENCH_STAMP := $(VENV)/.bench-stamp
# The Kubernetes version everything builds and tests against: 1.34, 1.35, 1.36 or 1.37 (one Go tools
# module per minor version, tools/k8s-1.N; hack/k8s-versions.sh list). Empty: the newest.
K8S_VERSION ?=
export K8S_VERSION
# The control plane's bin directory (built and cached by the script, or $KUBEBUILDER_ASSETS).
ASSETS = KUBEBUILDER_ASSETS="$$(hack/build-controlplane.sh 2>/dev/null | tail -n 1)"

.PHONY: install test unit fuzz lint run bench e2e e2e-matrix e2e-kind e2e-kind-local kind-node-image e2e-cluster cluster-binaries controlplane kubectl helm crd crd-fetch clean images

install: $(STAMP)

$(STAMP): pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e '.[test,lint]'
	touch $@

# kubectl at kube-apiserver's version (built and cached with the node binaries), first on PATH
# for the scenarios that check what kubectl shows a user.
KUBECTL_PATH = PATH="$$(hack/build-cluster.sh kubectl 2>/dev/null | tail -n 1):$$PATH"
# helm, built from its Go module and cached by version (hack/build-helm.sh), for the chart's tests.
HELM_BIN = HELM="$$(hack/build-helm.sh 2>/dev/null | tail -n 1)"

# Every test: the pure engine, the CLI, a real gunicorn over TLS, the Helm chart, and the
# end-to-end suite against a kube-apiserver + etcd built from their Go modules.
test: install controlplane kubectl helm
	$(ASSETS) $(KUBECTL_PATH) $(HELM_BIN) $(BIN)/pytest -q tests

# Everything but the end-to-end suite and the chart's tests (no Go needed).
unit: install
	$(BIN)/pytest -q tests --ignore=tests/e2e --ignore=tests/chart

# The fuzz tests (tests/fuzz: /mutate of a real gunicorn, preset documents through every reader,
# the CLI's arguments) with many more examples than `make test` gives them: a few minutes.
# FUZZ_PROFILE=fuzz-quick for the seconds-long run of `make test`.
FUZZ_PROFILE ?= fuzz-long
fuzz: install
	PODPRESET_FUZZ_PROFILE=$(FUZZ_PROFILE) $(BIN)/pytest -q -p no:logging tests/fuzz

lint: install $(BENCH_STAMP)
	$(BIN)/ruff check presets webhook tests bench hack
	$(BIN)/ruff format --check presets webhook tests bench hack
	$(BIN)/mypy presets webhook bench
	$(BIN)/python hack/gen-crd.py --check

# Serve deploy/examples over TLS on https://$(BIND) with a development CA and certificate made in
# $(CERTS) (no cluster). Ctrl-C stops it.
# Prints an AdmissionReview response with its base64 patch decoded.
SHOW_REVIEW := import base64, json, sys; r = json.load(sys.stdin); p = r["response"].get("patch"); r["response"]["patch"] = json.loads(base64.b64decode(p)) if p else None; print(json.dumps(r, indent=2))
run: install
	$(BIN)/python -m webhook.server.devcert $(CERTS) >/dev/null
	@echo "podpreset: serving deploy/examples on https://$(BIND); in another terminal, send the sample review:"
	@echo '  curl -sS --cacert $(CERTS)/ca.crt -H "Content-Type: application/json" --data-binary @deploy/examples/pods/review.json https://$(BIND)/mutate | $(BIN)/python -c '"'"'$(SHOW_REVIEW)'"'"
	@echo "  probes and metrics (plain HTTP): curl http://$(HEALTH_BIND)/readyz; curl http://$(HEALTH_BIND)/metrics"
	$(BIN)/podpreset serve -f deploy/examples --tls-cert $(CERTS)/tls.crt --tls-key $(CERTS)/tls.key --bind $(BIND) --health-bind $(HEALTH_BIND) --workers 1

controlplane:
	hack/build-controlplane.sh >/dev/null

kubectl:
	hack/build-cluster.sh kubectl >/dev/null

helm:
	hack/build-helm.sh >/dev/null

# Latency and throughput of /mutate against a no-op app on the same stack, the engine in-process,
# memory with 10,000 presets, pod creations through a real kube-apiserver (no webhook, no-op,
# fixed patch, podpreset) and one replica's PSS in kube mode; writes build/bench.json.
# See docs/performance.md.
bench: install $(BENCH_STAMP) controlplane
	command -v wrk >/dev/null || { SUDO=$$([ "$$(id -u)" = 0 ] || echo sudo); \
		$$SUDO apt-get install -y wrk || { $$SUDO apt-get update && $$SUDO apt-get install -y wrk; }; }
	$(ASSETS) $(BIN)/python -m bench.run $(if $(filter-out 0,$(QUICK)),--quick)

$(BENCH_STAMP): pyproject.toml
	$(BIN)/pip install --quiet -e '.[bench]'
	touch $@

# The end-to-end suite against a local kube-apiserver + etcd: make e2e K8S_VERSION=1.36.
e2e: install controlplane kubectl helm
	$(ASSETS) $(KUBECTL_PATH) $(HELM_BIN) $(BIN)/pytest -q tests/e2e

# The end-to-end suite against each supported Kubernetes version in turn (each built and cached on
# first use: a cold build is 10-30 minutes per version), then a table of version, passed, failed,
# seconds. K8S_VERSIONS='1.34 1.37' for a subset. Logs and JUnit files: build/e2e-matrix/.
K8S_VERSIONS ?=
e2e-matrix: install
	hack/e2e-matrix.sh $(K8S_VERSIONS)

# The PodPreset CRD, generated from kube-apiserver's OpenAPI stored in hack/openapi/.
crd: install
	$(BIN)/python hack/gen-crd.py

# Refresh hack/openapi/ from a freshly started kube-apiserver, then regenerate the CRD.
# Always from the newest supported version, whatever K8S_VERSION says.
crd-fetch: install
	KUBEBUILDER_ASSETS="$$(K8S_VERSION= hack/build-controlplane.sh | tail -n 1)" $(BIN)/python hack/gen-crd.py --fetch

# The same end-to-end scenarios as make e2e-cluster (both phases, kubelet ones included) against a kind
# cluster made from hack/kind/cluster.yaml (needs Docker and kind). Logs: build/e2e-kind/.
e2e-kind: install
	hack/e2e-kind.sh

# make e2e-kind on this machine, with nothing pulled and nothing leaving it: Debian's docker.io, a
# dockerd of this run only, kind built from its Go module, the node image assembled offline
# (hack/kind-node-image.sh); afterwards everything removed and checked gone. Needs Linux and root.
e2e-kind-local: install
	hack/e2e-kind-local.sh

# A kind node image for K8S_VERSION assembled without a registry (docker-archive; see deploy/README.md).
kind-node-image:
	hack/kind-node-image.sh $(K8S_VERSION)

# A real one-node cluster on this machine (containerd, kubelet, kube-proxy, a CNI bridge, the
# control plane), the images built locally, podpreset installed from deploy/ as a user would, the
# end-to-end suite in cluster mode plus the scenarios only a kubelet shows; then all torn down and
# checked gone. Needs Linux and root (installs the Debian packages it needs). Logs: build/e2e-cluster/.
e2e-cluster: install
	hack/e2e-cluster.sh

# kubelet, kube-proxy, kube-controller-manager, kube-scheduler and kubectl at kube-apiserver's version
# (K8S_VERSION).
cluster-binaries:
	hack/build-cluster.sh >/dev/null

# The pause, test-pod and webhook images as docker-archive tarballs in build/images/, built
# without a registry (names in hack/images.env; see deploy/README.md). Cached: a rerun takes seconds.
images:
	hack/build-images.sh

clean:
	rm -rf build .pytest_cache .mypy_cache .ruff_cache .hypothesis
