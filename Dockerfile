# One image, every role: `chorus gateway`, `chorus service <name>`,
# `chorus worker <name>`, `chorus up`. Multi-stage: the runtime image holds
# the binary and CA certificates only.
FROM rust:1-bookworm AS build
WORKDIR /src
COPY . .
RUN cargo build --release --locked --bin chorus \
 && cp target/release/chorus /chorus

FROM debian:bookworm-slim
RUN apt-get update \
 && apt-get install -y --no-install-recommends ca-certificates \
 && rm -rf /var/lib/apt/lists/*
COPY --from=build /chorus /usr/local/bin/chorus
USER 65534:65534
ENV CHORUS_LOG_FORMAT=json CHORUS_DATA_DIR=/tmp/chorus
ENTRYPOINT ["chorus"]
