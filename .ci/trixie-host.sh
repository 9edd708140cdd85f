#!/usr/bin/env bash
# Build the image of a host with another Python for tests/test_other_host.py: debootstrap a minimal Debian
# trixie (Python 3.13, where the test snapshots are Python 3.11) with python3 + venv + CA certificates and
# import it into the engine. envrepro itself is installed into a container of it by the test, from the
# checkout. Idempotent: an image already present is kept. Takes about 80 s the first time.
set -euo pipefail
tag="${ENVREPRO_TEST_HOST_IMAGE:-envrepro-test/host:trixie}"
if docker image inspect "$tag" >/dev/null 2>&1; then
    echo "host image $tag already present"
    exit 0
fi
if ! command -v debootstrap >/dev/null 2>&1 || [ ! -e /usr/share/debootstrap/scripts/trixie ]; then
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
root="$(mktemp -d /tmp/envrepro-rootfs-trixie.XXXXXX)"
trap 'rm -rf "$root"' EXIT
debootstrap --variant=minbase --include=python3,python3-venv,python3-pip,ca-certificates \
    trixie "$root" "$mirror" >/tmp/envrepro-debootstrap-trixie.log 2>&1 \
    || { tail -n 30 /tmp/envrepro-debootstrap-trixie.log >&2; exit 1; }
rm -rf "$root"/var/cache/apt/archives/*.deb "$root"/var/lib/apt/lists/*
tar -C "$root" -c . | docker import \
    --change 'ENV LANG=C.UTF-8' \
    --change 'ENV PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin' \
    --change 'CMD ["python3"]' \
    --message 'envrepro test host: debootstrap trixie minbase + python3 (3.13)' - "$tag" >/dev/null
echo "built $tag: $(docker run --rm --network none "$tag" python3 --version)"
