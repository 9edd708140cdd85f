#!/usr/bin/env bash
# Build the local Python base image the tests use in place of python:3.11-slim (no registry is reachable):
# debootstrap a minimal Debian bookworm with python3 + venv + CA certificates and import it into the engine.
set -euo pipefail
tag="${ENVREPRO_TEST_BASE_IMAGE:-envrepro-test/python:3.11-bookworm}"
if docker image inspect "$tag" >/dev/null 2>&1; then
    echo "base image $tag already present"
    exit 0
fi
if ! command -v debootstrap >/dev/null 2>&1; then
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -qq
    apt-get install -y -qq --no-install-recommends debootstrap >/dev/null
fi
mirror="$(grep -rhoE '^deb(\s+\[[^]]*\])?\s+\S+' /etc/apt/sources.list /etc/apt/sources.list.d/*.list 2>/dev/null \
    | awk '{print $NF}' | head -n1 || true)"
if [ -z "$mirror" ] && [ -f /etc/apt/sources.list.d/debian.sources ]; then
    mirror="$(awk '/^URIs:/{print $2; exit}' /etc/apt/sources.list.d/debian.sources)"
fi
mirror="${mirror:-http://deb.debian.org/debian}"
root="$(mktemp -d /tmp/envrepro-rootfs.XXXXXX)"
trap 'rm -rf "$root"' EXIT
debootstrap --variant=minbase --include=python3,python3-venv,python3-pip,ca-certificates \
    bookworm "$root" "$mirror" >/tmp/envrepro-debootstrap.log 2>&1 \
    || { tail -n 30 /tmp/envrepro-debootstrap.log >&2; exit 1; }
rm -rf "$root"/var/cache/apt/archives/*.deb "$root"/var/lib/apt/lists/*
tar -C "$root" -c . | docker import \
    --change 'ENV LANG=C.UTF-8' \
    --change 'ENV PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin' \
    --change 'CMD ["python3"]' \
    --message 'envrepro test base: debootstrap bookworm minbase + python3' - "$tag" >/dev/null
echo "built $tag: $(docker run --rm "$tag" python3 --version)"
