# syntax=docker/dockerfile:1
# One image runs every sub-command: `operator`, `gateway`, `control-plane`, `crds`, `ssh`
# (and `agent`, though VMs run the agent from the agent bundle: Node 24 + the compiled agent + its
# production dependencies, one tarball per architecture, which this image carries and the gateway
# serves at /.gitspaces/agent/<version>/).
# test/unit/dockerfile.test.ts checks this file; test/integration/image.test.ts builds the same
# production tree outside Docker and runs the entrypoint from it.

# --- build: compile TypeScript, build the agent bundles, then drop dev dependencies -----------
FROM node:24.21.0-bookworm-slim AS build
WORKDIR /src
COPY package.json package-lock.json ./
# No install scripts: the only ones are the `node` dev dependency's (the image has Node) and
# ssh2's optional native speed-ups (it falls back to pure JS).
RUN npm ci --ignore-scripts --no-audit --no-fund
COPY tsconfig.json tsconfig.build.json ./
COPY src ./src
COPY scripts/bundle-agent.ts ./scripts/
# The agent bundles for x64 and arm64 VMs (scripts/bundle-agent.ts: Node runtimes and the agent's
# dependencies come from the npm registry, integrity-checked; the cache mount keeps the downloads),
# built while the dev dependencies (TypeScript) are still here.
RUN --mount=type=cache,target=/root/.cache/gitspaces \
    node node_modules/typescript/bin/tsc -p tsconfig.build.json \
 && node scripts/bundle-agent.ts --arch x64,arm64 --out /src/build/agent-bundle \
 && npm prune --omit=dev --ignore-scripts --no-audit --no-fund

# --- runtime: Node 24, production dependencies, dist/ and the agent bundles, non-root ----------
FROM node:24.21.0-bookworm-slim
LABEL org.opencontainers.image.title="gitspaces-operator" \
      org.opencontainers.image.description="Self-hosted cloud development environments on VMs in your own GCP or AWS account" \
      org.opencontainers.image.source="https://github.com/gitspaces/gitspaces-operator" \
      org.opencontainers.image.licenses="Apache-2.0" \
      org.opencontainers.image.version="0.1.0"
ENV NODE_ENV=production \
    # Read-only root filesystem: nothing is written outside /tmp (an emptyDir in the chart).
    HOME=/tmp \
    # What `gitspaces gateway` serves to VMs booting (read-only, like the rest of the image).
    GITSPACES_AGENT_BUNDLES=/opt/gitspaces/bundles
WORKDIR /app
COPY --from=build /src/package.json ./
COPY --from=build /src/node_modules ./node_modules
COPY --from=build /src/dist ./dist
COPY --from=build /src/build/agent-bundle /opt/gitspaces/bundles
# The image's `node` user (uid 1000) exists too; 65532 is the conventional "nonroot" id the chart's
# securityContext sets, so the image and the chart agree without a user database entry.
USER 65532:65532
# Node is PID 1: every sub-command handles SIGTERM/SIGINT itself (drain, release the lease, exit),
# and none leaves child processes behind in a container, so no init process is needed.
ENTRYPOINT ["node", "/app/dist/cli/main.js"]
CMD ["help"]
