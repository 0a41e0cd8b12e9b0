# syntax=docker/dockerfile:1
# Build: docker build -t safeapp:dev .   (or: make image)

FROM rust:1.95-bookworm AS builder
WORKDIR /src
COPY Cargo.toml Cargo.lock ./
COPY src ./src
COPY benches ./benches
COPY crds ./crds
RUN cargo build --release --locked --bin safeapp

FROM gcr.io/distroless/cc-debian12:nonroot
COPY --from=builder /src/target/release/safeapp /safeapp
# Numeric, so Kubernetes runAsNonRoot can verify it without resolving a name.
USER 65532:65532
ENTRYPOINT ["/safeapp"]
CMD ["run"]
