#!/usr/bin/env bash
# A second Docker engine for the remote-engine tests: docker-in-docker in a container of this machine's
# engine, with its own data root (a volume), reached at 127.0.0.1 over TCP with TLS only. No host path of
# this machine exists in it, exactly like a remote build host or a CI service's docker-in-docker.
#
#   bash .ci/dind.sh              start it (idempotent); prints the DOCKER_HOST to use
#   bash .ci/dind.sh --teardown   remove the container, its volume and the certificates
#
# The client certificates (ca.pem, cert.pem, key.pem: the DOCKER_CERT_PATH layout) and an `env` file with
# DOCKER_HOST / DOCKER_TLS_VERIFY / DOCKER_CERT_PATH go to $ENVREPRO_DIND_DIR (default
# ~/.cache/envrepro/dind), where tests/support/engines.py finds them.
# DESIGN.md: --privileged fails here (CAP_SYS_RESOURCE is withheld), hence the explicit caps and options.
set -euo pipefail
name=envrepro-dind
volume=envrepro-dind-data
image=envrepro-test/dind:bookworm
base="${ENVREPRO_TEST_BASE_IMAGE:-envrepro-test/python:3.11-bookworm}"
port="${ENVREPRO_DIND_PORT:-23760}"
dir="${ENVREPRO_DIND_DIR:-$HOME/.cache/envrepro/dind}"
host="tcp://127.0.0.1:$port"

if [ "${1:-}" = "--teardown" ]; then
    docker rm -f "$name" >/dev/null 2>&1 || true
    docker volume rm "$volume" >/dev/null 2>&1 || true
    rm -rf "$dir"
    echo "removed $name, its volume $volume and $dir"
    exit 0
fi

dind() { DOCKER_HOST="$host" DOCKER_TLS_VERIFY=1 DOCKER_CERT_PATH="$dir" docker "$@"; }

make_certs() {  # a CA, a server certificate for 127.0.0.1/localhost, a client certificate
    [ -s "$dir/key.pem" ] && [ -s "$dir/server/server-key.pem" ] && return 0
    rm -rf "$dir" && mkdir -p "$dir/server" && chmod 700 "$dir"
    local tmp; tmp="$(mktemp -d)"
    openssl req -x509 -newkey rsa:2048 -nodes -days 30 -subj "/CN=envrepro dind CA" \
        -keyout "$tmp/ca-key.pem" -out "$dir/ca.pem" 2>/dev/null
    openssl req -newkey rsa:2048 -nodes -subj "/CN=localhost" \
        -keyout "$dir/server/server-key.pem" -out "$tmp/server.csr" 2>/dev/null
    printf 'subjectAltName=IP:127.0.0.1,DNS:localhost\nextendedKeyUsage=serverAuth\n' >"$tmp/server.ext"
    openssl x509 -req -in "$tmp/server.csr" -CA "$dir/ca.pem" -CAkey "$tmp/ca-key.pem" -CAcreateserial \
        -days 30 -extfile "$tmp/server.ext" -out "$dir/server/server-cert.pem" 2>/dev/null
    openssl req -newkey rsa:2048 -nodes -subj "/CN=envrepro client" \
        -keyout "$dir/key.pem" -out "$tmp/client.csr" 2>/dev/null
    printf 'extendedKeyUsage=clientAuth\n' >"$tmp/client.ext"
    openssl x509 -req -in "$tmp/client.csr" -CA "$dir/ca.pem" -CAkey "$tmp/ca-key.pem" -CAcreateserial \
        -days 30 -extfile "$tmp/client.ext" -out "$dir/cert.pem" 2>/dev/null
    cp "$dir/ca.pem" "$dir/server/ca.pem"
    chmod 644 "$dir/server/"*.pem  # read by dockerd (root) in the container through a read-only mount
    rm -rf "$tmp"  # the CA's key is not kept: nobody can sign more certificates for this engine
}

build_image() {  # debootstrap base + Debian's docker.io and iptables; an entrypoint that prepares mounts
    local ctx; ctx="$(mktemp -d)"
    cat >"$ctx/entrypoint.sh" <<'SH'
#!/bin/sh
# Runs as PID 1 of the dind container: make /sys and the cgroup hierarchies writable, make / shared (for
# the inner engine's mounts), then become dockerd with TLS on tcp and its own data root.
set -eu
mount -o remount,rw /sys
# A cgroup v1 hierarchy is "busy" for a plain remount; a bind remount changes this mount point's flag only.
for mnt in /sys/fs/cgroup /sys/fs/cgroup/*; do
    [ -L "$mnt" ] && continue
    mount -o remount,rw "$mnt" 2>/dev/null || mount -o remount,bind,rw "$mnt"
done
mount --make-rshared /
# A container that was stopped hard keeps the pid files of its last dockerd and containerd.
rm -f /var/run/docker.pid /var/run/docker/containerd/containerd.pid
exec dockerd --host=tcp://0.0.0.0:2376 --tlsverify --tlscacert=/certs/ca.pem \
    --tlscert=/certs/server-cert.pem --tlskey=/certs/server-key.pem \
    --data-root=/var/lib/docker --storage-driver=overlay2 "$@"
SH
    cat >"$ctx/Dockerfile" <<DOCKERFILE
FROM $base
RUN apt-get update -qq \\
 && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends docker.io iptables >/dev/null \\
 && rm -rf /var/lib/apt/lists/*
COPY entrypoint.sh /usr/local/bin/dind-entrypoint
RUN chmod 755 /usr/local/bin/dind-entrypoint
ENTRYPOINT ["/usr/local/bin/dind-entrypoint"]
DOCKERFILE
    docker build -q -t "$image" "$ctx" >/dev/null
    rm -rf "$ctx"
}

start() {
    local current; current="$(docker image inspect -f '{{.Id}}' "$image")"
    if [ "$(docker inspect -f '{{.Image}}' "$name" 2>/dev/null)" != "$current" ]; then
        docker rm -f "$name" >/dev/null 2>&1 || true  # absent, or made from an older image: start afresh
    elif [ "$(docker inspect -f '{{.State.Running}}' "$name")" = "true" ]; then
        return 0
    else  # stopped (an engine restart, a reboot): its layer keeps a stale docker.pid, so start afresh
        docker rm -f "$name" >/dev/null
    fi
    docker run -d --name "$name" --label io.envrepro.ci=dind \
        --cap-add ALL --cap-drop SYS_RESOURCE \
        --security-opt seccomp=unconfined --security-opt apparmor=unconfined \
        --security-opt systempaths=unconfined --device-cgroup-rule 'a *:* rwm' \
        -v "$volume:/var/lib/docker" -v "$dir/server:/certs:ro" \
        -p "127.0.0.1:$port:2376" "$image" >/dev/null
}

wait_ready() {
    for _ in $(seq 1 60); do
        if dind version --format '{{.Server.Version}}' >/dev/null 2>&1; then return 0; fi
        sleep 1
    done
    echo "the dind engine did not answer at $host within 60 s; its log:" >&2
    docker logs --tail 30 "$name" >&2 || true
    return 1
}

docker image inspect "$base" >/dev/null 2>&1 || { echo "missing $base: run .ci/base-image.sh" >&2; exit 1; }
make_certs
build_image
start
wait_ready
if ! dind image inspect "$base" >/dev/null 2>&1; then  # no registry is reachable: copy the base over
    docker save "$base" | dind load -q >/dev/null
fi
printf 'DOCKER_HOST=%s\nDOCKER_TLS_VERIFY=1\nDOCKER_CERT_PATH=%s\n' "$host" "$dir" >"$dir/env"
echo "dind engine $(dind version --format '{{.Server.Version}}') ready; use it with:" >&2
sed 's/^/export /' "$dir/env"
