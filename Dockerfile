# The relay as a container image: small (Debian slim + Node 24 + tunn's runtime dependencies),
# runs as the unprivileged `node` user, keeps its database and keys in the /data volume.
#   docker build -t tunn .
#   docker run -d --name tunn -p 443:443 -p 80:80 -v tunn-data:/data \
#     -e TUNN_DOMAIN=tunn.example.com -e TUNN_ACME_DIRECTORY=letsencrypt -e TUNN_ACME_EMAIL=you@example.com tunn
# See README.md, "Run the relay as a service". test/e2e/package.test.ts runs this file's
# ENTRYPOINT with its ENV against the same packed tarball (there is no Docker in CI).

# Build: the npm package (`npm pack` compiles to dist/ in its prepack script).
FROM node:24-bookworm-slim AS build
WORKDIR /src
COPY package.json package-lock.json ./
RUN npm ci --no-audit --no-fund
COPY . .
RUN npm pack --pack-destination /tmp && mv /tmp/tunn-*.tgz /tmp/tunn.tgz

# Run: only the package and its runtime dependencies.
FROM node:24-bookworm-slim
COPY --from=build /tmp/tunn.tgz /tmp/tunn.tgz
RUN npm install -g --omit=dev --no-audit --no-fund /tmp/tunn.tgz \
 && rm /tmp/tunn.tgz && npm cache clean --force \
 && mkdir -p /data && chown node:node /data && chmod 700 /data
# Every `tunn relay` flag can be set as TUNN_<FLAG> (docker run -e) or with --flag after the image.
# Ports below 1024 need no root: Docker (20.10+) lets any user in a container bind them.
ENV NODE_ENV=production \
    TUNN_DATA_DIR=/data
USER node
VOLUME ["/data"]
EXPOSE 443/tcp 80/tcp
# tunn handles SIGTERM itself (`docker stop`), so it runs as PID 1 without an init.
ENTRYPOINT ["tunn", "relay"]
