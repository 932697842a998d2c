# syntax=docker/dockerfile:1
# Lifeboat's container image: the `npm pack` package installed on Node 24, run as a non-root user on a
# read-only root filesystem. The Helm chart (deploy/helm/lifeboat) passes the command as `args`.
# test/deploy/package.test.ts runs the same steps as this file (pack, install the tarball, run read-only
# as uid 10001); the image itself is built by the release pipeline, not by the tests.

# --- build: compile src/ to dist/ and pack it (the toolchain stays in this stage) ---
FROM node:24-slim AS build
WORKDIR /src
COPY package.json package-lock.json ./
# --omit=optional: the only optional dependency is the Linux x64 Node the project's tests use.
RUN npm ci --omit=optional --ignore-scripts --no-audit --no-fund
COPY tsconfig.json tsconfig.build.json README.md ./
COPY bin ./bin
COPY src ./src
RUN mkdir /out && npm pack --pack-destination /out

# --- runtime ---
FROM node:24-slim
# tini as PID 1: forwards SIGTERM to Lifeboat (which stops the command in progress and records it as
# interrupted within 9 s) and reaps children; Node as PID 1 would get no default signal handling.
RUN apt-get update \
  && apt-get install -y --no-install-recommends tini ca-certificates \
  && rm -rf /var/lib/apt/lists/*
COPY --from=build /out/ /tmp/pkg/
RUN npm install -g --omit=optional --no-audit --no-fund /tmp/pkg/lifeboat-*.tgz \
  && rm -rf /tmp/pkg /root/.npm \
  && useradd --uid 10001 --user-group --no-create-home --home-dir /tmp --shell /usr/sbin/nologin lifeboat \
  && lifeboat --version
# Only /tmp (an emptyDir in the chart) is written: HOME points there so nothing tries the read-only root.
ENV HOME=/tmp \
  NODE_ENV=production \
  MALLOC_ARENA_MAX=2 \
  LIFEBOAT_LOG_FORMAT=json
USER 10001:10001
WORKDIR /tmp
EXPOSE 9420
ENTRYPOINT ["/usr/bin/tini", "--", "lifeboat"]
CMD ["--help"]
