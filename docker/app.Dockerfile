# switchyard from a prebuilt release binary: the image scripts/images.sh and the local compose
# profile (docker/compose.local.yml) build, on a Debian base made here by debootstrap
# (BASE=switchyard-os:bookworm). The build context holds this file and the binary `switchyard`.
# docker/Dockerfile is the same image built from source on the official images.
ARG BASE=debian:bookworm-slim
FROM ${BASE}
RUN useradd --system --uid 10001 --no-create-home switchyard
COPY switchyard /usr/local/bin/switchyard
USER switchyard
ENV BIND=0.0.0.0 PORT=8000 LOG_FORMAT=json
EXPOSE 8000
STOPSIGNAL SIGTERM
# Alive, not ready (see docker/Dockerfile).
HEALTHCHECK --interval=5s --timeout=3s --retries=3 CMD ["switchyard", "healthcheck"]
ENTRYPOINT ["switchyard"]
CMD ["serve"]
