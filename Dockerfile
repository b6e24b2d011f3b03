# syntax=docker/dockerfile:1
#
# The `parlor` binary in a small Debian image. One image runs every service:
# `parlor sfu`, `parlor signaling`, `parlor chat` (or `parlor serve` for everything in one
# process). The web app is embedded in the binary; nothing else is needed at run time.
#
#   docker build -t parlor .
#   docker run --rm -p 8080:8080 -p 7880-7883:7880-7883/udp -e PARLOR_WORKERS=4 \
#     -e PARLOR_PUBLIC_IP=<host address> parlor serve
#
# (The SFU runs one worker per core unless PARLOR_WORKERS says otherwise, each on its own
# UDP port from 7880: publish as many ports as it has workers.)
#
# No secret is baked in: PARLOR_TOKEN_SECRET, PARLOR_DATABASE_URL and the S3 keys come
# from the environment when the container starts.

ARG RUST_VERSION=1.95
ARG DEBIAN_RELEASE=bookworm

FROM rust:${RUST_VERSION}-${DEBIAN_RELEASE} AS builder
# aws-lc-sys (TLS and DTLS crypto) may build its C code through CMake.
RUN apt-get update \
 && apt-get install -y --no-install-recommends cmake \
 && rm -rf /var/lib/apt/lists/*
WORKDIR /src
COPY . .
# The cache mounts keep the crate registry and the target folder between builds.
RUN --mount=type=cache,target=/usr/local/cargo/registry \
    --mount=type=cache,target=/usr/local/cargo/git \
    --mount=type=cache,target=/src/target \
    cargo build --release --locked --bin parlor \
 && install -D -m 0755 target/release/parlor /out/parlor

FROM debian:${DEBIAN_RELEASE}-slim AS runtime
RUN apt-get update \
 && apt-get install -y --no-install-recommends ca-certificates \
 && rm -rf /var/lib/apt/lists/* \
 && groupadd --system --gid 10001 parlor \
 && useradd --system --uid 10001 --gid parlor --home-dir /data --no-create-home \
      --shell /usr/sbin/nologin parlor \
 && install -d -o parlor -g parlor -m 0750 /data
COPY --from=builder /out/parlor /usr/local/bin/parlor
USER 10001:10001
WORKDIR /data
# Listen on every interface inside the container; the defaults are loopback-only.
ENV PARLOR_DATA_DIR=/data \
    PARLOR_LISTEN=0.0.0.0:8080 \
    PARLOR_MEDIA_BIND=0.0.0.0
# HTTP (page, /ws, WHIP/WHEP, /api/v1, /metrics); `parlor sfu` serves /metrics, /healthz
# and /readyz on its own --listen address (8090 in the Kubernetes manifests).
EXPOSE 8080/tcp
# Media: worker i of the SFU uses PARLOR_MEDIA_PORT + i (7880 and up, one worker per core).
EXPOSE 7880-7895/udp
VOLUME ["/data"]
# SIGTERM drains: signaling tells its clients to go, an SFU node hands its rooms over.
STOPSIGNAL SIGTERM
ENTRYPOINT ["parlor"]
CMD ["serve"]
