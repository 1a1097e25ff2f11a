# syntax=docker/dockerfile:1
# One image with the products and orders services, the `shop` tool and the `store-actor` CLI
# (verify, compact, export, import: the README's operations, e.g. from `kubectl exec`).
#   docker build -t shop .
#   docker run --rm -p 8081:8081 -p 8082:8082 -v shop-data:/data shop     # `shop up`, both services
#   docker run --rm shop products --help                                 # one service (the Helm chart)
# The `tools` stage adds a busybox shell (for compose.yaml's key and token setup); the last stage,
# the default, has no shell at all.

ARG RUST_VERSION=1.95

FROM rust:${RUST_VERSION}-bookworm AS build
WORKDIR /src
COPY . .
RUN --mount=type=cache,target=/usr/local/cargo/registry \
    --mount=type=cache,target=/src/target \
    cargo build --release --locked -p products -p orders -p shop -p store-actor --bins \
 && mkdir -p /out/bin /out/data /out/keys \
 && cp target/release/products target/release/orders target/release/shop \
       target/release/store-actor /out/bin/

FROM gcr.io/distroless/cc-debian12:debug-nonroot AS tools
COPY --from=build /out/bin/ /usr/local/bin/
COPY --from=build --chown=65532:65532 /out/data /data
COPY --from=build --chown=65532:65532 /out/keys /keys
USER 65532:65532
ENTRYPOINT []
CMD ["shop", "--help"]

FROM gcr.io/distroless/cc-debian12:nonroot AS runtime
COPY --from=build /out/bin/ /usr/local/bin/
# Owned by the runtime user, so a fresh named volume mounted here is writable.
COPY --from=build --chown=65532:65532 /out/data /data
COPY --from=build --chown=65532:65532 /out/keys /keys
USER 65532:65532
EXPOSE 8081 8082
# SIGTERM stops the services gracefully (event streams end, requests finish, stores flush).
STOPSIGNAL SIGTERM
CMD ["shop", "up", "--data-dir", "/data", "--products-addr", "0.0.0.0:8081", "--orders-addr", "0.0.0.0:8082"]
