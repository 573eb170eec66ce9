#!/usr/bin/env bash
# Builds the Dockerfile's image where no image registry can be reached: a Deno 2.9.6 base made from
# Debian packages (debootstrap --variant=minbase bookworm + the deno binary from npm), imported
# into podman, then `podman build` of the top-level Dockerfile on it (DENO_IMAGE=that base).
# Needs root, debootstrap and podman (apt-get install -y debootstrap podman), and the npm registry
# (deno install from deno.lock inside the build). Not part of .ci/run: it takes minutes.
# ISOLATION (default chroot: RUN steps without an OCI runtime, since crun here refuses the hybrid
# cgroup v1/v2 hierarchy; give oci where crun/runc work).
#
#   scripts/container/build_image.sh [WORK_DIR]     (default /tmp/worldstream-container)
# Env: BASE_TAG (default localhost/worldstream-deno-base:2.9.6), IMAGE_TAG (localhost/worldstream:dev),
#      DEBIAN_MIRROR (http://deb.debian.org/debian), DENO_BIN (deno 2.9.6 binary; default: the
#      one .ci/run installs, ~/.cache/worldstream/deno-2.9.6).
set -euo pipefail
cd "$(dirname "$0")/../.."
ROOT="$(pwd)"
WORK="${1:-/tmp/worldstream-container}"
BASE_TAG="${BASE_TAG:-localhost/worldstream-deno-base:2.9.6}"
IMAGE_TAG="${IMAGE_TAG:-localhost/worldstream:dev}"
MIRROR="${DEBIAN_MIRROR:-http://deb.debian.org/debian}"
DENO_BIN="${DENO_BIN:-$HOME/.cache/worldstream/deno-2.9.6/node_modules/deno/deno}"

[[ "$(id -u)" == 0 ]] || { echo "build_image.sh: needs root (debootstrap, podman)" >&2; exit 1; }
"$DENO_BIN" --version | head -1 | grep -q '^deno 2\.9\.6' ||
  { echo "build_image.sh: $DENO_BIN is not deno 2.9.6" >&2; exit 1; }

BASE="$WORK/base"
if [[ ! -f "$BASE/.debootstrap-done" ]]; then
  rm -rf "$BASE"
  mkdir -p "$WORK"
  echo "debootstrap --variant=minbase bookworm $BASE"
  debootstrap --variant=minbase bookworm "$BASE" "$MIRROR" >"$WORK/debootstrap.log" 2>&1 ||
    { tail -20 "$WORK/debootstrap.log" >&2; exit 1; }
  touch "$BASE/.debootstrap-done"
fi
# What the denoland/deno:debian image offers the Dockerfile: deno on PATH.
install -m 0755 "$DENO_BIN" "$BASE/usr/local/bin/deno"
rm -rf "$BASE/var/cache/apt/archives/"*.deb "$BASE/var/lib/apt/lists/"*
# A machine whose egress goes through a TLS-inspecting proxy (SSL_CERT_FILE names its CA bundle)
# needs that bundle for the build's npm downloads: the base made here trusts it through DENO_CERT
# (so the image built on it does too; an image built on denoland/deno does not).
CHANGES=(--change 'CMD ["deno"]')
if [[ -n "${SSL_CERT_FILE:-}" && -f "$SSL_CERT_FILE" ]]; then
  install -D -m 0644 "$SSL_CERT_FILE" "$BASE/usr/local/share/worldstream-build-ca.pem"
  CHANGES+=(--change 'ENV DENO_CERT=/usr/local/share/worldstream-build-ca.pem')
fi

echo "podman import -> $BASE_TAG"
tar --exclude=./.debootstrap-done -C "$BASE" -c . |
  podman import "${CHANGES[@]}" - "$BASE_TAG" >/dev/null

echo "podman build -> $IMAGE_TAG"
# --network=host: the build's `deno install` fetches npm packages (locked by deno.lock).
podman build --format docker --isolation="${ISOLATION:-chroot}" --network=host --build-arg "DENO_IMAGE=$BASE_TAG" -t "$IMAGE_TAG" -f Dockerfile "$ROOT"
podman image inspect "$IMAGE_TAG" --format '{{.Id}} {{.Size}} bytes'
