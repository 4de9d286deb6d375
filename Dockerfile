# edgeflow's container image: the worker binary, the settings folder, a health check that needs
# no shell, running as a non-root user in a distroless Debian 12 image.
#
#   docker build -t edgeflow .                    # or: buildah bud --format docker -t edgeflow .
#   docker run --rm -p 9464:9464 --env-file edgeflow.env edgeflow   # see deploy/README.md
#
# Stages: chef (toolchain, protoc, cargo-chef) → planner (the dependency recipe) → builder
# (dependencies in a layer of their own, then the binary) → runtime. The dependency layer is
# rebuilt only when a Cargo.toml or Cargo.lock changes, not on every source edit.
#
# deploy/test-image.sh builds the runtime stage on its own, with a binary built outside, and runs
# its health check: the runtime stage takes nothing from `builder` but `/out/`.

ARG RUST_VERSION=1.95

# Debian 12 like the runtime image, so the binary needs no newer glibc than the runtime has.
FROM rust:${RUST_VERSION}-slim-bookworm AS chef
# protoc: the Temporal SDK compiles its protobuf definitions at build time. libprotobuf-dev holds
# the well-known types (google/protobuf/*.proto) they import; without it protoc fails.
RUN apt-get update \
 && apt-get install -y --no-install-recommends protobuf-compiler libprotobuf-dev \
 && rm -rf /var/lib/apt/lists/*
RUN cargo install cargo-chef --locked --version 0.1.78
WORKDIR /app

FROM chef AS planner
COPY . .
# --bin: the recipe leaves out workspace members the binary does not need (testkit).
RUN cargo chef prepare --recipe-path recipe.json --bin edgeflow

FROM chef AS builder
COPY --from=planner /app/recipe.json recipe.json
RUN cargo chef cook --release --locked --bin edgeflow --recipe-path recipe.json
COPY . .
# Symbols are kept on purpose: a panic's backtrace names its functions.
RUN cargo build --release --locked --bin edgeflow \
 && install -D -m 0755 target/release/edgeflow /out/edgeflow \
 && mkdir -p /out/state

# glibc, libgcc, CA certificates, tzdata and the user `nonroot` (65532); no shell, no package
# manager. So nothing below may RUN, and the health check is the binary itself.
FROM gcr.io/distroless/cc-debian12:nonroot AS runtime
COPY --from=builder /out/edgeflow /usr/local/bin/edgeflow
COPY config/ /etc/edgeflow/config/
# The worker's only writable place (SQLite databases). Mount a volume here to keep it.
COPY --from=builder --chown=65532:65532 /out/state/ /var/lib/edgeflow/
# Settings: config/default.toml → config/production.toml → EDGEFLOW__SECTION__KEY variables →
# `--config FILE`. Production logs JSON and serves /healthz, /readyz, /metrics on 0.0.0.0:9464.
# The SQLite database lives in the state folder (the settings' default, var/, is not writable
# here); `-e EDGEFLOW__DATABASE__URL=postgres://...` replaces it.
ENV EDGEFLOW_CONFIG_DIR=/etc/edgeflow/config \
    EDGEFLOW_ENV=production \
    EDGEFLOW__DATABASE__URL=sqlite:///var/lib/edgeflow/edgeflow.db?mode=rwc
# Relative paths in the settings (config/queries, config/templates) resolve as in the repository.
WORKDIR /etc/edgeflow
# Numeric, so an orchestrator can check it is not root without reading /etc/passwd.
USER 65532:65532
EXPOSE 9464
# The worker drains on SIGTERM within shutdown.grace_period_secs (30 s by default): give it
# longer than that before SIGKILL, e.g. `docker stop -t 45` or terminationGracePeriodSeconds: 45.
STOPSIGNAL SIGTERM
# Liveness, not readiness: /readyz is 503 while Temporal is unreachable, and restarting the
# worker would not bring Temporal back (it reconnects by itself). If ops.listen moves, move this.
HEALTHCHECK --interval=15s --timeout=5s --start-period=10s --retries=3 \
    CMD ["edgeflow", "health", "--url", "http://127.0.0.1:9464/healthz"]
ENTRYPOINT ["edgeflow"]
CMD ["worker"]
