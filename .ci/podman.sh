#!/usr/bin/env bash
# Podman's Docker-compatible API for the Podman tests: Debian's podman, rootful, with its own storage, a
# containers.conf and a unix socket. DESIGN.md: cgroupfs (no systemd here), and default_ulimits set to
# the machine's hard nofile limit and nproc=4096, else containers fail with "setting rlimit type 7".
#
#   bash .ci/podman.sh              start it (idempotent); prints the DOCKER_HOST to use
#   bash .ci/podman.sh --teardown   stop the service and remove its storage
#
# Everything lives in $ENVREPRO_PODMAN_DIR (default ~/.cache/envrepro/podman): root/, runroot/,
# containers.conf, podman.sock, service.pid, service.log and an `env` file tests/support/engines.py reads.
set -euo pipefail
dir="${ENVREPRO_PODMAN_DIR:-$HOME/.cache/envrepro/podman}"
base="${ENVREPRO_TEST_BASE_IMAGE:-envrepro-test/python:3.11-bookworm}"
sock="$dir/podman.sock"
host="unix://$sock"
export CONTAINERS_CONF="$dir/containers.conf"
pod() { podman --root "$dir/root" --runroot "$dir/runroot" --cgroup-manager=cgroupfs "$@"; }

ours() {  # the recorded pid is alive and still our podman service (after a hard kill it may be reused)
    [ -s "$dir/service.pid" ] && grep -qa 'system' "/proc/$(cat "$dir/service.pid")/cmdline" 2>/dev/null \
        && grep -qa 'podman' "/proc/$(cat "$dir/service.pid")/cmdline" 2>/dev/null
}

stop_service() {
    if ours; then
        kill "$(cat "$dir/service.pid")"
        for _ in $(seq 1 20); do kill -0 "$(cat "$dir/service.pid")" 2>/dev/null || break; sleep 0.5; done
    fi
    rm -f "$dir/service.pid" "$sock"
}

if [ "${1:-}" = "--teardown" ]; then
    stop_service
    [ -d "$dir/root" ] && pod system reset --force >/dev/null 2>&1 || true
    rm -rf "$dir"
    echo "stopped the podman service and removed $dir"
    exit 0
fi

if ! command -v podman >/dev/null 2>&1; then
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -qq
    apt-get install -y -qq --no-install-recommends podman runc netavark aardvark-dns catatonit >/dev/null
fi
mkdir -p "$dir/root" "$dir/runroot" && chmod 700 "$dir"
cat >"$CONTAINERS_CONF" <<CONF
[containers]
default_ulimits = ["nofile=$(ulimit -Hn):$(ulimit -Hn)", "nproc=4096:4096"]

[engine]
cgroup_manager = "cgroupfs"
runtime = "runc"  # crun 1.8 refuses this machine's hybrid cgroup layout
events_logger = "file"

[network]
network_backend = "netavark"
CONF

answers() { curl -sf --max-time 5 --unix-socket "$sock" http://d/_ping >/dev/null 2>&1; }
if ! answers; then
    stop_service
    # Started detached (setsid) so it outlives this script; --time=0: it never exits on its own.
    setsid podman --root "$dir/root" --runroot "$dir/runroot" --cgroup-manager=cgroupfs \
        system service --time=0 "$host" >"$dir/service.log" 2>&1 </dev/null &
    echo $! >"$dir/service.pid"
    for _ in $(seq 1 60); do answers && break; sleep 1; done
    answers || { echo "podman did not answer at $host; log:" >&2; tail -n 30 "$dir/service.log" >&2; exit 1; }
fi
if ! pod image exists "$base"; then  # no registry is reachable: copy the base over from the docker engine
    docker save "$base" | pod load -q >/dev/null
fi
printf 'DOCKER_HOST=%s\nCONTAINERS_CONF=%s\n' "$host" "$CONTAINERS_CONF" >"$dir/env"
echo "podman $(pod version --format '{{.Server.Version}}' 2>/dev/null || pod --version) ready; use it with:" >&2
sed 's/^/export /' "$dir/env"
