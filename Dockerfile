# syntax=docker/dockerfile:1
# One image for every process of the product: api (default), worker, migrate, pki, cli, sim.
FROM node:24-bookworm-slim AS build
WORKDIR /app
COPY package.json package-lock.json ./
RUN npm ci --no-audit --no-fund
COPY tsconfig.json tsconfig.build.json nest-cli.json ./
COPY src ./src
COPY migrations ./migrations
RUN npm run build && npm prune --omit=dev

FROM node:24-bookworm-slim
ENV NODE_ENV=production \
    PKI_DIR=/pki
WORKDIR /app
COPY --from=build /app/package.json ./
COPY --from=build /app/node_modules ./node_modules
COPY --from=build /app/dist ./dist
COPY openapi ./openapi
# /pki: the PKI volume; /sim: the simulator's sealed state volume.
RUN mkdir -p /pki /sim && chown node:node /pki /sim
USER node
EXPOSE 8443 8080 9443 9444 9090
CMD ["node", "dist/src/main.js"]
