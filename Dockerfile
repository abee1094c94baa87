# syntax=docker/dockerfile:1
#
# The bosun image for those who build with a daemon:
#
#   docker build -t bosun:0.1.0 .
#
# It holds what `cargo xtask image` puts in its (reproducible, daemon-less)
# image: the release binary at /bosun (symbols kept, DWARF stripped, as
# xtask does), exactly the shared libraries it links and the loader,
# Debian's CA bundle, the nonroot user (65532) and nothing else. A test
# keeps this file's final stage in step with xtask/src/image/. The build
# stage is Debian bookworm, whose glibc the libraries come from.

FROM docker.io/library/rust:1.95-bookworm AS build
WORKDIR /src
COPY . .
RUN --mount=type=cache,target=/usr/local/cargo/registry \
    --mount=type=cache,target=/src/target \
    cargo build --release --locked --package bosun --bin bosun \
 && mkdir /rootfs \
 && objcopy --strip-debug target/release/bosun /rootfs/bosun
# The libraries as ldd resolves them (copied through their symlinks), as
# xtask/src/image/rootfs.rs collects them.
RUN set -eu; \
    for lib in $(ldd /rootfs/bosun | grep -o '/[^ ]*'); do \
        install -D -m 0755 "$lib" "/rootfs$lib"; \
    done; \
    install -D -m 0644 /etc/ssl/certs/ca-certificates.crt /rootfs/etc/ssl/certs/ca-certificates.crt; \
    install -d -m 1777 /rootfs/tmp; \
    install -d -m 0700 /rootfs/home/nonroot; \
    install -d -m 0755 /rootfs/var/cache/bosun
COPY xtask/image/etc/ /rootfs/etc/

FROM scratch
COPY --from=build /rootfs/ /
COPY --from=build --chown=65532:65532 /rootfs/home/nonroot /home/nonroot
COPY --from=build --chown=65532:65532 /rootfs/var/cache/bosun /var/cache/bosun
USER 65532:65532
ENV PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin BOSUN_CACHE_DIR=/var/cache/bosun/modules
EXPOSE 8080
ARG CREATED=1970-01-01T00:00:00Z
ARG REVISION=unknown
LABEL org.opencontainers.image.title="bosun" \
      org.opencontainers.image.description="A Kubernetes operator host that runs reconcilers as sandboxed WebAssembly components" \
      org.opencontainers.image.source="https://github.com/bosun-dev/bosun" \
      org.opencontainers.image.licenses="Apache-2.0" \
      org.opencontainers.image.version="0.1.0" \
      org.opencontainers.image.created="${CREATED}" \
      org.opencontainers.image.revision="${REVISION}"
ENTRYPOINT ["/bosun"]
CMD ["run", "--modules-from-cluster", "--leader-elect"]
