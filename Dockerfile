# Gateway image: one image, the role is chosen by the command (all | ingress | worker).
FROM node:20-bookworm-slim
WORKDIR /app
ENV NODE_ENV=production
COPY package.json package-lock.json .npmrc ./
RUN npm ci --omit=dev --no-audit --no-fund
COPY adapters ./adapters
COPY gateway ./gateway
COPY bot ./bot
COPY config ./config
COPY models ./models
COPY scripts ./scripts
COPY tsconfig.json ./
USER node
EXPOSE 8080
ENV HOST=0.0.0.0
HEALTHCHECK --interval=10s --timeout=3s CMD node -e "fetch('http://127.0.0.1:8080/healthz').then(r=>process.exit(r.ok?0:1)).catch(()=>process.exit(1))"
# The pipeline's young-generation flags (gateway/node-flags.ts); docker-compose starts the ingress with its own.
ENTRYPOINT ["npx", "tsx", "--max-semi-space-size=64", "--min-semi-space-size=64", "--no-memory-reducer", "gateway/main.ts"]
CMD ["--role", "all"]
