# signet for docker-compose.yml: built from this repository, run as an unprivileged user.
FROM rust:1-bookworm AS build
WORKDIR /src
COPY . .
RUN cargo build --release --locked --bin signet

FROM debian:bookworm-slim
RUN apt-get update && apt-get install -y --no-install-recommends ca-certificates \
    && rm -rf /var/lib/apt/lists/* \
    && useradd --system --home /var/lib/signet signet \
    && mkdir -p /var/lib/signet && chown signet /var/lib/signet
COPY --from=build /src/target/release/signet /usr/local/bin/signet
USER signet
EXPOSE 8080
ENTRYPOINT ["signet"]
CMD ["serve"]
