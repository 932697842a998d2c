# syntax=docker/dockerfile:1
# Lifeboat's container image: the `npm pack` package with exactly the locked production dependencies on
# Node 24, run as a non-root user on a read-only root filesystem. The Helm chart (deploy/helm/lifeboat)
# passes the command as `args`. test/deploy/package.test.ts runs the same steps as this file in a scratch
# directory (pack, unpack, `npm ci --omit=dev --omit=optional`, run read-only as uid 10001); the image
# itself is built by the release pipeline, not by the tests.

# --- build: compile src/ to dist/, pack it, install its production tree (the toolchain stays here) ---
FROM node:24-slim AS build
WORKDIR /src
COPY package.json package-lock.json ./
RUN npm ci --ignore-scripts --no-audit --no-fund
COPY tsconfig.json tsconfig.build.json README.md ./
COPY bin ./bin
COPY src ./src
RUN mkdir /out && npm pack --pack-destination /out
# Not `npm install -g` of the tarball: a global install ignores --omit and would add the Linux x64 Node
# binary the project's own tests use (an optional dependency, ~190 MB) and resolve versions afresh; an
# `npm ci` of the unpacked package against the lockfile installs the tested versions and nothing else.
RUN mkdir -p /opt/lifeboat \
  && tar -xzf /out/lifeboat-*.tgz -C /opt/lifeboat --strip-components=1 \
  && cp package-lock.json /opt/lifeboat/ \
  && cd /opt/lifeboat \
  && npm ci --omit=dev --omit=optional --ignore-scripts --no-audit --no-fund

# --- runtime ---
FROM node:24-slim
# tini as PID 1: forwards SIGTERM to Lifeboat (which stops the command in progress and records it as
# interrupted within 9 s) and reaps children; Node as PID 1 would get no default signal handling.
RUN apt-get update \
  && apt-get install -y --no-install-recommends tini ca-certificates \
  && rm -rf /var/lib/apt/lists/*
COPY --from=build /opt/lifeboat /opt/lifeboat
RUN ln -s /opt/lifeboat/bin/lifeboat.mjs /usr/local/bin/lifeboat \
  && useradd --uid 10001 --user-group --no-create-home --home-dir /tmp --shell /usr/sbin/nologin lifeboat \
  && lifeboat --version
# Only /tmp (an emptyDir in the chart) is written: HOME points there so nothing tries the read-only root.
# A young generation of at most 4 MiB per half keeps a MongoDB restore 40-100 MiB smaller at the
# same speed (1 MiB cost a verified restore ~10%): docs/performance.md, "Memory".
ENV HOME=/tmp \
  NODE_ENV=production \
  NODE_OPTIONS=--max-semi-space-size=4 \
  MALLOC_ARENA_MAX=2 \
  LIFEBOAT_LOG_FORMAT=json
USER 10001:10001
WORKDIR /tmp
EXPOSE 9420
ENTRYPOINT ["/usr/bin/tini", "--", "lifeboat"]
CMD ["--help"]
