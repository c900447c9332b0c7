#!/usr/bin/env bash
# Base images from Debian packages, no registry: debootstrap (minbase, bookworm) into a cached
# tarball, imported into Podman once.
#   localhost/conduit-base:bookworm   python3 (the runtime of the services and the gateway)
#   localhost/conduit-infra:bookworm  postgresql, redis-server, prometheus (Compose and kube-smoke)
# Cache: ${CONDUIT_IMAGE_CACHE:-~/.cache/conduit-mesh/images}.
set -euo pipefail
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
podman="$here/podman"
cache="${CONDUIT_IMAGE_CACHE:-$HOME/.cache/conduit-mesh/images}"
mirror="${DEBIAN_MIRROR:-http://deb.debian.org/debian}"
mkdir -p "$cache"

build() {  # name packages
  local name="$1" packages="$2" tarball="$cache/$1-bookworm.tar"
  if "$podman" image exists "localhost/$name:bookworm"; then return; fi
  if [[ ! -s "$tarball" ]]; then
    local root
    root="$(mktemp -d "$cache/$name.XXXX")"
    echo "debootstrap $name ($packages)"
    debootstrap --variant=minbase --include="$packages" bookworm "$root" "$mirror" >"$root.log" 2>&1 \
      || { tail -20 "$root.log"; rm -rf "$root"; exit 1; }
    # No package caches or lists in the image.
    rm -rf "$root"/var/cache/apt/archives/*.deb "$root"/var/lib/apt/lists/*
    tar -C "$root" -cf "$tarball.tmp" . && mv "$tarball.tmp" "$tarball"
    rm -rf "$root" "$root.log"
  fi
  "$podman" import --quiet --change "ENV PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin" \
    "$tarball" "localhost/$name:bookworm" >/dev/null
  echo "imported localhost/$name:bookworm"
}

case "${1:-all}" in
  base) build conduit-base python3,python3-venv,ca-certificates ;;
  infra) build conduit-infra postgresql,redis-server,prometheus,ca-certificates ;;
  all)
    build conduit-base python3,python3-venv,ca-certificates &
    build conduit-infra postgresql,redis-server,prometheus,ca-certificates &
    wait -n && wait -n ;;
esac
