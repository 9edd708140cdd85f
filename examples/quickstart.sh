#!/usr/bin/env bash
# The main job on an example, from a fresh machine: envrepro in .venv, a training environment with
# TensorFlow, a tiny model trained in it, its snapshot, the pinned image, and the parity test in that image.
#
#   bash examples/quickstart.sh
#
# On these machines no image registry is reachable, so the image is built on the local debootstrap base
# that .ci/base-image.sh makes (ENVREPRO_BASE_IMAGE=""  uses the base envrepro resolves: python:X.Y.Z-slim).
set -euo pipefail
cd "$(dirname "$0")/.."
repo="$PWD"
example="$repo/examples/tiny-model"
work="${ENVREPRO_QUICKSTART_DIR:-$repo/.quickstart}"
base="${ENVREPRO_BASE_IMAGE-envrepro-test/python:3.11-bookworm}"
say() { printf '\n== quickstart: %s\n' "$*" >&2; }

say "envrepro in .venv"
[ -x .venv/bin/envrepro ] || { python3 -m venv .venv && .venv/bin/python -m pip install --quiet -e .; }
envrepro=("$repo/.venv/bin/envrepro")

say "a Docker engine, and the local base image"
bash .ci/engine.sh
if [ -n "$base" ]; then bash .ci/base-image.sh; fi

say "envrepro doctor: can a build succeed here? (stops here with what to do if not)"
doctor_args=()
if [ -n "$base" ]; then doctor_args+=(--base-image "$base"); fi
"${envrepro[@]}" doctor ${doctor_args[@]+"${doctor_args[@]}"}

say "the training environment ($work/train-venv: $(cat "$example/requirements.txt"))"
mkdir -p "$work"
if [ ! -x "$work/train-venv/bin/python" ] || [ ! -f "$work/train-venv/.ready" ]; then
    python3 -m venv "$work/train-venv"
    "$work/train-venv/bin/python" -m pip install --quiet -r "$example/requirements.txt"
    touch "$work/train-venv/.ready"
fi

say "train the tiny model"
cd "$work"
"$work/train-venv/bin/python" "$example/train.py"

say "envrepro snapshot: the environment, and reference outputs of both saved forms of the model"
"${envrepro[@]}" snapshot --python "$work/train-venv/bin/python" --model model.keras --model model.h5 --show

say "envrepro build: pinned, hash-locked image (a rerun untags the envrepro:<digest> it replaces)"
build_args=(--out build --tag envrepro-example/tiny-model:latest)
if [ -n "$base" ]; then build_args+=(--base-image "$base"); fi
"${envrepro[@]}" build "${build_args[@]}"

say "envrepro parity: the model inside the image, against training"
for model in model.keras model.h5; do
    "${envrepro[@]}" parity --model "$model" --markdown "parity-${model//./-}.md" --report "parity-${model//./-}.json"
done

say "envrepro images: what envrepro built on this engine (\`envrepro clean\` removes the replaced ones)"
"${envrepro[@]}" images

say "done: reports in $work (parity-*.md, parity-*.json); the image is envrepro-example/tiny-model:latest"
