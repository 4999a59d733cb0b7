# syntax=docker/dockerfile:1
# The syncpod image: built on Debian 12 from the Debian packages scripts/bootstrap installs,
# then a slim Debian 12 runtime holding the binary, the connector plugins and the migrations,
# run as a non-root user.
#
#   docker build -t syncpod:0.1.0 .
#
# Docker does not run on the project's development machines or in its CI, so neither builds
# this file: it has not been tested there (see docs/operations.md).

FROM debian:12 AS build
RUN apt-get update \
 && DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends \
      cmake ninja-build g++ pkg-config \
      libpoco-dev libpqxx-dev libboost-dev libboost-filesystem-dev nlohmann-json3-dev \
      libspdlog-dev libfmt-dev googletest libgtest-dev libgmock-dev \
 && rm -rf /var/lib/apt/lists/*
WORKDIR /src
COPY . .
# The whole project is built (its tests need GoogleTest at configure time anyway); only the
# default install component is installed: the binary in bin/, the plugins in
# lib/syncpod/plugins (the binary's default plugin path) and the migrations in
# share/syncpod/migrations; not the SDK.
RUN cmake --preset release \
 && cmake --build --preset release --parallel "$(nproc)" \
 && DESTDIR=/staging cmake --install build/release --prefix /usr --component Unspecified --strip

FROM debian:12-slim AS runtime
# The shared libraries the binary and the plugins link (libpqxx and libpq, Poco, spdlog, fmt);
# apt brings what they depend on. tests/packaging/runtime_libraries (a ctest test) fails when
# the built binary or a plugin needs a library this list does not bring.
RUN apt-get update \
 && DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends \
      ca-certificates libpq5 libpqxx-6.4 libpocofoundation80 libpocoutil80 libpocojson80 \
      libpoconet80 libspdlog1.10 libfmt9 \
 && rm -rf /var/lib/apt/lists/* \
 && groupadd --system --gid 10001 syncpod \
 && useradd --system --uid 10001 --gid 10001 --no-create-home --home-dir /nonexistent \
      --shell /usr/sbin/nologin syncpod
COPY --from=build /staging/usr/ /usr/
# Fails the build if a library is missing or a plugin does not load.
RUN syncpod --version && syncpod plugins list
USER 10001:10001
# Nothing is written outside /tmp: the image runs with a read-only root filesystem.
ENTRYPOINT ["/usr/bin/syncpod"]
CMD ["serve", "--role=all"]
