# The podpreset webhook: `podpreset serve` under gunicorn, as a non-root user on a read-only root.
#   docker build -t podpreset:dev .                                    # on python:3.11-slim
#   hack/build-images.sh webhook      # the same steps on a local stand-in base, no registry needed
# The base is a build argument so that a machine without a registry can build on its own
# Python 3.11 image (hack/build-images.sh uses a Debian bookworm root made with mmdebstrap).
# Everything below works on both: Debian's python3 (with python3-venv) or the image's own.
ARG BASE_IMAGE=python:3.11-slim

FROM ${BASE_IMAGE} AS build
WORKDIR /src
COPY pyproject.toml README.md ./
COPY presets presets
COPY webhook webhook
# One self-contained virtualenv; pip and setuptools leave it once it is installed.
RUN python3 -m venv /opt/podpreset \
 && /opt/podpreset/bin/pip install --no-cache-dir --no-compile . \
 && /opt/podpreset/bin/python -m compileall -q /opt/podpreset/lib \
 && /opt/podpreset/bin/pip uninstall --yes --quiet pip setuptools

FROM ${BASE_IMAGE}
COPY --from=build /opt/podpreset /opt/podpreset
# The root filesystem is read-only in the cluster: bytecode was compiled at build time, and the
# only writable paths serve needs are /tmp (the metrics directory; an emptyDir in deploy/) and
# /dev/shm (gunicorn's worker heartbeat files).
ENV PATH=/opt/podpreset/bin:$PATH PYTHONDONTWRITEBYTECODE=1 PYTHONUNBUFFERED=1
USER 65532:65532
# 8443: TLS, POST /mutate only; 8080: plain HTTP, /healthz, /readyz and /metrics (--health-bind).
EXPOSE 8443 8080
ENTRYPOINT ["/opt/podpreset/bin/podpreset"]
CMD ["serve", "--tls-cert=/etc/podpreset/tls/tls.crt", "--tls-key=/etc/podpreset/tls/tls.key"]
