# The podpreset webhook: `podpreset serve` under gunicorn, as a non-root user on a read-only root.
FROM python:3.11-slim AS build
WORKDIR /src
COPY pyproject.toml README.md ./
COPY presets presets
COPY webhook webhook
RUN pip wheel --no-cache-dir --wheel-dir /wheels .

FROM python:3.11-slim
COPY --from=build /wheels /wheels
RUN pip install --no-cache-dir /wheels/*.whl && rm -rf /wheels
ENV PYTHONDONTWRITEBYTECODE=1 PYTHONUNBUFFERED=1
USER 65532:65532
EXPOSE 8443
ENTRYPOINT ["podpreset"]
CMD ["serve", "--tls-cert=/etc/podpreset/tls/tls.crt", "--tls-key=/etc/podpreset/tls/tls.key"]
