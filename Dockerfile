# syntax=docker/dockerfile:1
# Switchyard as a container: built with the official Rust image, run on slim Debian as
# an unprivileged user. Everything it serves (pages, static files, migrations, the
# bundled Mastodon recording) is inside the binary.
#
#   docker build -t switchyard .
#   docker run --rm -p 127.0.0.1:8000:8000 switchyard       # SQLite inside the container
#
# docker-compose.yml runs the full layout: PostgreSQL, Redis, two instances, the
# ingester and nginx.

FROM rust:1.95-bookworm AS build
WORKDIR /src
COPY . .
# The caches keep crates and compiled dependencies between builds; the binary is
# copied out because the target cache is not part of the image.
RUN --mount=type=cache,target=/usr/local/cargo/registry \
    --mount=type=cache,target=/src/target \
    cargo build --release --locked --bin switchyard \
    && install -D -m 0755 target/release/switchyard /out/switchyard

# The same Debian release as the build image, so the binary finds the glibc it was
# linked against.
FROM debian:bookworm-slim
# CA certificates for following a live Mastodon instance over HTTPS.
RUN apt-get update \
    && apt-get install -y --no-install-recommends ca-certificates \
    && rm -rf /var/lib/apt/lists/*
RUN useradd --system --user-group --uid 10001 --home-dir /app --create-home switchyard
COPY --from=build /out/switchyard /usr/local/bin/switchyard

USER switchyard
# The default SQLite file goes here, in the user's own folder.
WORKDIR /app
ENV SWITCHYARD_LISTEN=0.0.0.0:8000 \
    SWITCHYARD_LOG_FORMAT=json \
    NO_COLOR=1
EXPOSE 8000
# The image has no HTTP client; bash asks /healthz itself, on the port above.
HEALTHCHECK --interval=10s --timeout=3s --start-period=30s --retries=3 \
    CMD bash -c 'exec 3<>/dev/tcp/127.0.0.1/8000 \
        && printf "GET /healthz HTTP/1.0\r\n\r\n" >&3 \
        && read -r status <&3 && [[ $status == *" 200 "* ]]'
# On SIGTERM the app ends its streams and exits within 10 s.
ENTRYPOINT ["switchyard"]
CMD ["serve"]
