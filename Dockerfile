# shardgate image: compile TypeScript in one stage, install production dependencies in another, and run dist/ with
# those as the non-root user `node`. Configuration: /etc/shardgate/pgdog.toml and /etc/shardgate/users.toml (mount a
# folder there); the two-phase commit decision log belongs on a volume (e.g. /var/lib/shardgate, made here for it).
# docs/operations.md#running-with-docker; docker-compose.example.yml runs it in front of two PostgreSQL shards.

FROM node:20-bookworm-slim AS build
WORKDIR /app
COPY package.json package-lock.json ./
# Optional dependencies are the embedded PostgreSQL binaries of `shardgate demo` and the tests: not needed here.
RUN npm ci --omit=optional --no-audit --no-fund
COPY tsconfig.json tsconfig.build.json ./
COPY src ./src
RUN npm run build

FROM node:20-bookworm-slim AS deps
WORKDIR /app
COPY package.json package-lock.json ./
# No production dependency has an install script.
RUN npm ci --omit=dev --omit=optional --ignore-scripts --no-audit --no-fund

FROM node:20-bookworm-slim
ENV NODE_ENV=production
WORKDIR /app
# package.json marks dist/*.js as ES modules.
COPY package.json ./
COPY --from=deps /app/node_modules ./node_modules
COPY --from=build /app/dist ./dist
COPY docker/healthcheck.mjs ./docker/
RUN mkdir -p /etc/shardgate /var/lib/shardgate && chown node:node /var/lib/shardgate
USER node
EXPOSE 6432 8080
# Healthy = the HTTP health endpoint (healthcheck_port in pgdog.toml) answers 200; where it is off, the proxy's port
# accepts TCP connections (it listens only after start-up recovery). docker/healthcheck.mjs; set these two to the ports
# pgdog.toml uses.
ENV SHARDGATE_HEALTHCHECK_PORT=8080 SHARDGATE_PORT=6432
HEALTHCHECK --interval=30s --timeout=5s --start-period=20s --retries=3 \
  CMD ["node", "docker/healthcheck.mjs"]
# SIGTERM (docker stop) shuts the proxy down cleanly; extra arguments are appended, e.g. `docker run … check-config`.
ENTRYPOINT ["node", "dist/cli.js", "--config", "/etc/shardgate/pgdog.toml", "--users", "/etc/shardgate/users.toml"]
