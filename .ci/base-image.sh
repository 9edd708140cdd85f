#!/usr/bin/env bash
# Build a local Debian image with python3 + venv + pip + CA certificates by debootstrap and import it into
# the engine (no image registry is reachable here). Usage: base-image.sh [SUITE [TAG]].
#   default: bookworm (Python 3.11), the base the tests use in place of python:3.11-slim;
#   .ci/trixie-host.sh: trixie (Python 3.13), a host with another Python for tests/test_other_host.py.
# Idempotent: an image already present is kept. About a minute the first time.
set -euo pipefail
suite="${1:-bookworm}"
tag="${2:-${ENVREPRO_TEST_BASE_IMAGE:-envrepro-test/python:3.11-bookworm}}"
if docker image inspect "$tag" >/dev/null 2>&1; then
    echo "image $tag already present"
    exit 0
fi
if ! command -v debootstrap >/dev/null 2>&1 || [ ! -e "/usr/share/debootstrap/scripts/$suite" ]; then
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
root="$(mktemp -d "/tmp/envrepro-rootfs-$suite.XXXXXX")"
log="/tmp/envrepro-debootstrap-$suite.log"
trap 'rm -rf "$root"' EXIT
debootstrap --variant=minbase --include=python3,python3-venv,python3-pip,ca-certificates \
    "$suite" "$root" "$mirror" >"$log" 2>&1 \
    || { tail -n 30 "$log" >&2; exit 1; }
rm -rf "$root"/var/cache/apt/archives/*.deb "$root"/var/lib/apt/lists/*
tar -C "$root" -c . | docker import \
    --change 'ENV LANG=C.UTF-8' \
    --change 'ENV PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin' \
    --change 'CMD ["python3"]' \
    --message "envrepro test image: debootstrap $suite minbase + python3" - "$tag" >/dev/null
echo "built $tag: $(docker run --rm --network none "$tag" python3 --version)"
