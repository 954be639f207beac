# sbserver in a small image that runs as a non-root user.
#
#   docker build -t sbserver .
#   docker run -p 8099:8099 -v sbdata:/data sbserver            # embedded SQLite under /data
#
# compose.yaml runs two of these on PostgreSQL and Redis behind a proxy. /extra/htmltox needs a
# Chromium: build with `--build-arg WITH_CHROMIUM=1` (about 300 MB more).

# --- build: a wheel of sbserver with its compiled lean-context library ---------------------------
FROM python:3.11-slim-bookworm AS build
RUN apt-get update \
 && apt-get install -y --no-install-recommends gcc libc6-dev \
 && rm -rf /var/lib/apt/lists/*
WORKDIR /src
COPY pyproject.toml README.md ./
COPY sbserver ./sbserver
RUN pip wheel --no-cache-dir --wheel-dir /wheels .

# --- run --------------------------------------------------------------------------------------
FROM python:3.11-slim-bookworm
ARG WITH_CHROMIUM=0
RUN if [ "$WITH_CHROMIUM" = "1" ]; then \
      apt-get update && apt-get install -y --no-install-recommends chromium && rm -rf /var/lib/apt/lists/*; \
    fi \
 && groupadd --system --gid 10001 sbserver \
 && useradd --system --uid 10001 --gid sbserver --home-dir /data --no-create-home sbserver \
 && mkdir -p /data && chown sbserver:sbserver /data
COPY --from=build /wheels /wheels
RUN pip install --no-cache-dir /wheels/*.whl && rm -rf /wheels

ENV APP_ENV=prod \
    SB_DATA_DIR=/data \
    SB_HOST=0.0.0.0 \
    PORT=8099 \
    PYTHONUNBUFFERED=1
USER sbserver
WORKDIR /data
VOLUME ["/data"]
EXPOSE 8099
HEALTHCHECK --interval=10s --timeout=3s --start-period=20s --retries=3 \
  CMD ["python", "-c", "import os, urllib.request; urllib.request.urlopen('http://127.0.0.1:%s/ping' % os.environ.get('PORT', '8099'), timeout=2)"]
# the server handles SIGTERM: it stops accepting, lets requests and runs finish, closes streams
STOPSIGNAL SIGTERM
CMD ["backend", "server"]
