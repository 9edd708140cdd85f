#!/usr/bin/env bash
# The image of a host with another Python for tests/test_other_host.py: Debian trixie (Python 3.13, where
# the test snapshots are Python 3.11), made like the base image. envrepro itself is installed into a
# container of it by the test, from the checkout. Idempotent.
set -euo pipefail
exec bash "$(dirname "$0")/base-image.sh" trixie "${ENVREPRO_TEST_HOST_IMAGE:-envrepro-test/host:trixie}"
