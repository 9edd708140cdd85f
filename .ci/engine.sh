#!/usr/bin/env bash
# Install (if missing) and start a Docker engine on this machine; wait until it answers.
# The machines ship only the docker client; DESIGN.md: apt's docker.io, dockerd in the background, overlay2.
set -euo pipefail
log=/var/log/envrepro-dockerd.log

if docker info >/dev/null 2>&1; then
    echo "engine already running: $(docker version --format '{{.Server.Version}}')"
    exit 0
fi
if ! command -v dockerd >/dev/null 2>&1; then
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -qq
    apt-get install -y -qq --no-install-recommends docker.io iptables >/dev/null
fi
# A dockerd that was killed hard leaves its pid file; dockerd refuses to start when that pid is alive again.
pgrep -x dockerd >/dev/null || rm -f /var/run/docker.pid /var/run/docker/containerd/containerd.pid
# Started detached (setsid) so it outlives this script; its log stays for post-mortems.
setsid dockerd --storage-driver=overlay2 >"$log" 2>&1 < /dev/null &
for _ in $(seq 1 60); do
    if docker info >/dev/null 2>&1; then
        echo "engine started: $(docker version --format '{{.Server.Version}}')"
        exit 0
    fi
    sleep 1
done
echo "dockerd did not answer within 60 s; last lines of $log:" >&2
tail -n 30 "$log" >&2
exit 1
