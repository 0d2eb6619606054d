# Multi-stage build: compile in the Rust image, run in a slim Debian as a non-root user.
FROM rust:1-bookworm AS build
RUN apt-get update && apt-get install -y --no-install-recommends cmake pkg-config libssl-dev && rm -rf /var/lib/apt/lists/*
WORKDIR /src
COPY Cargo.toml Cargo.lock ./
COPY src ./src
COPY migrations ./migrations
COPY benches ./benches
RUN cargo build --release --locked --bin partnergate

FROM debian:bookworm-slim
RUN apt-get update && apt-get install -y --no-install-recommends ca-certificates libssl3 && rm -rf /var/lib/apt/lists/* \
    && useradd --system --uid 10001 --home /var/lib/partnergate --create-home partnergate
COPY --from=build /src/target/release/partnergate /usr/local/bin/partnergate
COPY config /etc/partnergate
USER partnergate
WORKDIR /var/lib/partnergate
VOLUME ["/etc/partnergate", "/var/lib/partnergate"]
EXPOSE 8080 8443 9090
ENV PARTNERGATE_CONFIG=/etc/partnergate/partnergate.toml
ENTRYPOINT ["/usr/local/bin/partnergate"]
CMD ["run"]
