# signet for docker-compose.yml: built from this repository, run as an unprivileged user, with
# SoftHSM2 installed and a token initialised at the first start (docker/entrypoint.sh).
FROM rust:1-bookworm AS build
WORKDIR /src
COPY . .
RUN cargo build --release --locked --bin signet

FROM debian:bookworm-slim
RUN apt-get update && apt-get install -y --no-install-recommends ca-certificates softhsm2 \
    && rm -rf /var/lib/apt/lists/* \
    && useradd --system --home /var/lib/signet signet \
    && mkdir -p /var/lib/signet /var/lib/softhsm \
    && chown signet /var/lib/signet /var/lib/softhsm
COPY --from=build /src/target/release/signet /usr/local/bin/signet
COPY docker/entrypoint.sh /usr/local/bin/signet-entrypoint
USER signet
EXPOSE 8080
ENTRYPOINT ["signet-entrypoint"]
CMD ["serve"]
