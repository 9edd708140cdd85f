#!/usr/bin/env bash
# Two pytest sessions at once on one engine (issue 13 item 5): both must pass. Not run by .ci/run.
#   bash tests/support/two_sessions.sh                 # the docker-marked tests (the default)
#   bash tests/support/two_sessions.sh -k 'signal or ctrl_c or timeout'   # a cheaper selection
# Each session gets its own --basetemp and log under $OUT (default: a fresh temporary directory).
# Exit 0 only when both sessions exit 0; prints each session's result line and wall time.
set -uo pipefail
cd "$(dirname "$0")/../.."
PYTHON="${PYTHON:-.venv/bin/python}"
OUT="${OUT:-$(mktemp -d -t envrepro-two-sessions.XXXXXX)}"
export ENVREPRO_REQUIRE_DOCKER=1 ENVREPRO_REQUIRE_INTEGRATION=1 PIP_DISABLE_PIP_VERSION_CHECK=1
selection=("$@")
[[ ${#selection[@]} -gt 0 ]] || selection=(-m docker)

session() {
    local name="$1" start
    start=$(date +%s)
    "$PYTHON" -m pytest "${selection[@]}" --basetemp="$OUT/tmp-$name" > "$OUT/$name.log" 2>&1
    local rc=$?
    printf 'session %s: exit %s after %ss: %s\n' "$name" "$rc" "$(($(date +%s) - start))" \
        "$(grep -E '^=+ .*(passed|failed|error).* =+$' "$OUT/$name.log" | tail -1)"
    return "$rc"
}

session A & a=$!
session B & b=$!
wait "$a"; rc_a=$?
wait "$b"; rc_b=$?
printf 'logs: %s/A.log %s/B.log\n' "$OUT" "$OUT"
[[ $rc_a -eq 0 && $rc_b -eq 0 ]]
