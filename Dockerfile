# Multi-stage build: compile TypeScript in a full Node image, run from a slim one as a non-root user.
FROM node:20-slim AS build
WORKDIR /app
COPY package.json package-lock.json ./
RUN npm ci --omit=optional
COPY tsconfig.json tsconfig.build.json ./
COPY src ./src
RUN npm run build && npm prune --omit=dev --omit=optional

FROM node:20-slim
ENV NODE_ENV=production
WORKDIR /app
COPY --from=build /app/node_modules ./node_modules
COPY --from=build /app/dist ./dist
COPY package.json pgdog.toml.example users.toml.example ./
RUN mkdir -p /etc/shardgate && chown node:node /etc/shardgate
USER node
EXPOSE 6432
# The proxy answers a CancelRequest-sized probe; a TCP connect is enough to know it listens.
HEALTHCHECK --interval=10s --timeout=3s --start-period=5s --retries=3 \
  CMD node -e "require('net').connect(6432,'127.0.0.1').on('connect',function(){this.end();process.exit(0)}).on('error',()=>process.exit(1))"
ENTRYPOINT ["node", "dist/cli.js"]
CMD ["--config", "/etc/shardgate/pgdog.toml", "--users", "/etc/shardgate/users.toml"]
