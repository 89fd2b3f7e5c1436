# syntax=docker/dockerfile:1
# The Caxton engine: `caxton server start` on 0.0.0.0:8080, its data in the /var/lib/caxton volume
# (docs/operations.md, "Deploying"). Build: docker build -t caxton .
#
# The engine refuses to serve 0.0.0.0 without a token, so give it one (docs/security.md):
#   caxton token create admin --role admin --file tokens.yaml     # prints the token once: keep it
#   docker run -v ./tokens.yaml:/etc/caxton/tokens.yaml:ro -e CAXTON_TOKENS_FILE=/etc/caxton/tokens.yaml \
#     -v caxton-data:/var/lib/caxton -p 127.0.0.1:8080:8080 caxton
# or pass one admin token in CAXTON_API_TOKEN. A caxton.yaml mounted at /etc/caxton/caxton.yaml is read
# (the working directory); CAXTON_* variables override it. Any other command runs too:
#   docker run --rm -v "$PWD:/repo" -w /repo caxton validate
# The image has no git: reconciling a git source (`caxton up`, `caxton reconcile`) and `--ref` need one with git.
ARG PYTHON_VERSION=3.11

FROM python:${PYTHON_VERSION}-slim AS build
WORKDIR /src
COPY pyproject.toml README.md LICENSE ./
COPY caxton ./caxton
# caxton's wheel and the wheels of everything the engine needs (and the PostgreSQL backend: store.url,
# memory.backend: postgres, `caxton storage migrate`), for the runtime stage to install offline
RUN pip wheel --no-cache-dir --wheel-dir /wheels ".[engine,postgres]"

FROM python:${PYTHON_VERSION}-slim
LABEL org.opencontainers.image.title="caxton" \
      org.opencontainers.image.description="Caxton engine: AI agents (WASM sandboxes, vector memory) behind an HTTP API" \
      org.opencontainers.image.licenses="Apache-2.0"
RUN --mount=type=bind,from=build,source=/wheels,target=/wheels \
    pip install --no-cache-dir --no-index /wheels/*.whl \
 && groupadd --system --gid 10001 caxton \
 && useradd --system --uid 10001 --gid caxton --home-dir /var/lib/caxton --shell /usr/sbin/nologin caxton \
 && install -d -o caxton -g caxton -m 0750 /var/lib/caxton \
 && install -d -m 0755 /etc/caxton
ENV PYTHONUNBUFFERED=1 \
    PYTHONDONTWRITEBYTECODE=1 \
    CAXTON_HOST=0.0.0.0 \
    CAXTON_PORT=8080 \
    CAXTON_DATA_DIR=/var/lib/caxton
WORKDIR /etc/caxton
# numeric, so Kubernetes' runAsNonRoot can check it
USER 10001:10001
VOLUME ["/var/lib/caxton"]
EXPOSE 8080
# /healthz is open (no token needed); python's urllib, so the image needs no curl. Over TLS, or on another
# port than CAXTON_PORT, set CAXTON_HEALTHCHECK_URL.
HEALTHCHECK --interval=30s --timeout=5s --start-period=30s --retries=3 \
    CMD ["python", "-c", "import os, urllib.request; urllib.request.urlopen(os.environ.get('CAXTON_HEALTHCHECK_URL') or 'http://127.0.0.1:%s/healthz' % os.environ.get('CAXTON_PORT', '8080'), timeout=4)"]
# SIGTERM (docker stop) drains in-flight messages (up to 30 s: give `docker stop -t 40`), then exits 0;
# SIGHUP (docker kill -s HUP) reloads caxton.yaml and the tokens file.
STOPSIGNAL SIGTERM
ENTRYPOINT ["caxton"]
CMD ["server", "start"]
