"""Benchmark: what `envrepro bisect` costs.

1. Builds per bisect against the number of groups (`--groups`): every group a distribution group (each
   variant a build), the first TensorFlow's; one cause (TensorFlow's group, or any other) or two that must
   move together, placed at every position; the count is of distinct variants the search asks for, as
   bisect builds each set once (the real shortlists and ddmin, the real books).
2. `--real`: the wall time of test (b) — a TF 2.15.1 / Keras 2 model, the image of the TF 2.21 snapshot,
   `--atol 0 --rtol 0` — as a ratio to one cold `envrepro build --no-cache` of the TF 2.15 snapshot.

3. `--sizes NAME==VERSION,...`: builds the variant of `--image` that returns those distributions (the
   snapshot `--image-snapshot` says what the image has), as bisect builds it, and prints its size against
   the image's and the layers it adds (`docker image inspect` Size, `docker history`). The variant is kept:
   a second run is a cache hit; remove it with `docker rmi`.

Measured 2026-12-07, with the prime suspect tried first (bisect.shortlists): TensorFlow's group the cause,
  1 build at any number of groups (ddmin alone: 2-6, every group at once first); another single group,
  median 5 / 7 / 8 / 10 at 4 / 8 / 16 / 32 groups (one more than ddmin alone: the suspect's build); two
  groups: median 9.5 / 16.5 / 23 / 29.5 (ddmin alone 9.5 / 16 / 22 / 28.5).
Measured 2026-11-30, ddmin alone (2 cores; two CI runs shared the machine during --real):
  builds per bisect, one cause: median 4 / 5.5 / 7 / 8.5 at 4 / 8 / 16 / 32 groups (max 5 / 7 / 9 / 11);
  two causes that must move together: median 9.5 / 16 / 22 / 28.5 (above the default --max-builds 8
  from 8 groups on).
  --real: bisect (b) 782 s (exit 1: parity failed, as in (b)), one cold
  `envrepro build --no-cache` of the TF 2.15 snapshot 180 s: ratio 4.35 (one sample, loaded).

usage: python bench/bisect_bench.py [--groups 2,4,8,16,32] [--real --python215 PATH --models DIR
       --image envrepro-test/tf221:cpu --base-image envrepro-test/python:3.11-bookworm]
       [--sizes numpy==2.3.5 --image-snapshot envrepro.lock.json]
"""

from __future__ import annotations

import argparse
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from envrepro.bisect import narrowed
from envrepro.variants import Group


def builds_for(size: int, causes: frozenset[int]) -> int:
    """Distinct variants bisect's search asks for: group 0 is TensorFlow's (the prime suspect, tried
    alone first: bisect.narrowed), the others single distributions; each set counted once, as in _Lab."""
    groups = tuple(Group("tensorflow" if i == 0 else f"dist-{i}", "packages", ()) for i in range(size))
    asked: set[frozenset[int]] = set()

    def test(subset: tuple[Group, ...]) -> bool:
        chosen = {groups.index(g) for g in subset}
        asked.add(frozenset(chosen))
        return causes <= chosen

    found = narrowed(groups, test)
    assert {groups.index(g) for g in found or ()} == causes
    return len(asked)


def builds_table(sizes: list[int]) -> None:
    print(f"{'groups':>6} {'causes':>22} {'min':>4} {'median':>6} {'max':>4}")
    for size in sizes:
        cases = {
            "TensorFlow's group": [frozenset({0})],
            "one other group": [frozenset({i}) for i in range(1, size)],
            "two groups": [frozenset({i, j}) for i in range(size) for j in range(i + 1, size)],
        }
        for name, causes in cases.items():
            builds = [builds_for(size, c) for c in causes]
            print(f"{size:>6} {name:>22} {min(builds):>4} {statistics.median(builds):>6g} {max(builds):>4}")


def timed(argv: list[str]) -> tuple[float, int]:
    started = time.perf_counter()
    done = subprocess.run(argv, capture_output=True, text=True, check=False)
    return time.perf_counter() - started, done.returncode


def real(args: argparse.Namespace) -> None:
    envrepro = [sys.executable, "-m", "envrepro"]
    with tempfile.TemporaryDirectory() as folder:
        snap = Path(folder) / "envrepro.lock.json"
        model = str(
            Path(args.models) / "cnn.keras"
        )  # dense.h5 gives bit-identical outputs: nothing to bisect
        subprocess.run([*envrepro, "snapshot", "--python", args.python215, "--model", model, "-o", str(snap)],
                       check=True, capture_output=True)  # fmt: skip
        bisect_s, code = timed([*envrepro, "bisect", "--snapshot", str(snap), "--model", model,
                                "--image", args.image, "--atol", "0", "--rtol", "0"])  # fmt: skip
        print(f"bisect (b): {bisect_s:.0f} s (exit {code})")
        build_s, code = timed([*envrepro, "build", "--snapshot", str(snap), "--base-image", args.base_image,
                               "--out", str(Path(folder) / "build"), "--tag", "envrepro-bench/tf215:cold",
                               "--target", "cpu", "--no-cache"])  # fmt: skip
        print(f"cold build of the TF 2.15 snapshot: {build_s:.0f} s (exit {code})")
        print(f"ratio bisect/build: {bisect_s / build_s:.2f}")
        subprocess.run(["docker", "rmi", "envrepro-bench/tf215:cold"], capture_output=True, check=False)


def sizes(args: argparse.Namespace) -> None:
    from envrepro import snapshot
    from envrepro.build import BuildRequest, build_secrets
    from envrepro.engine import DockerEngine
    from envrepro.variant_build import (
        build_variant,
        default_locker,
        files_tag,
        lock_variant,
        plan_variant,
        platform_key,
        variant_target,
    )

    pins = dict(pin.split("==", 1) for pin in args.sizes.split(","))
    removed = tuple(name for name, version in pins.items() if not version)
    pins = {name: version for name, version in pins.items() if version}
    snap = snapshot.load(Path(args.image_snapshot))
    engine, secrets = DockerEngine(), build_secrets(BuildRequest(snapshot_path=Path(args.image_snapshot)))
    versions = {d.key: d.version for d in snap.environment.distributions}
    target = variant_target(snap, snap.environment, args.image, pins, removed)
    started = time.perf_counter()
    image_id, lock = lock_variant(engine, args.image, target, default_locker(secrets))
    plan = plan_variant(lock, pins, removed, versions, platform_key(target))
    variant = build_variant(engine, args.image, image_id, plan, secrets)
    took = time.perf_counter() - started
    base, built = engine.inspect_image(args.image), engine.inspect_image(variant.tag)
    print(
        f"variant {variant.tag} ({'built' if variant.built else 'cache hit'} in {took:.0f} s) of {args.image}"
    )
    print(f"image {base.size_bytes / 1e6:.0f} MB, variant {built.size_bytes / 1e6:.0f} MB: "
          f"+{(built.size_bytes - base.size_bytes) / 1e6:.1f} MB")  # fmt: skip
    if plan.install:
        files = engine.inspect_image(files_tag(plan))
        print(
            f"files image {files_tag(plan)}: {files.size_bytes / 1e6:.1f} MB (FROM scratch, kept as a cache)"
        )
    history = subprocess.run(["docker", "history", "--no-trunc", "--format", "{{.Size}}\t{{.CreatedBy}}",
                              variant.tag], capture_output=True, text=True, check=True).stdout  # fmt: skip
    for line in history.splitlines()[: len(built.history) - len(base.history)]:
        print("  layer", line[:150])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--groups", default="2,4,8,16,32")
    parser.add_argument("--real", action="store_true")
    parser.add_argument(
        "--python215", default=str(Path.home() / ".cache/envrepro/test-envs/tf-2.15.1/bin/python")
    )
    parser.add_argument("--models", help="A folder of models saved by TF 2.15 (tests/support/make_models.py)")
    parser.add_argument("--image", default="envrepro-test/tf221:cpu")
    parser.add_argument("--base-image", default="envrepro-test/python:3.11-bookworm")
    parser.add_argument("--sizes", metavar="NAME==VERSION,...", help="Build this variant, show its size")
    parser.add_argument("--image-snapshot", help="The snapshot the --image was built from (for --sizes)")
    args = parser.parse_args()
    if args.sizes:
        sizes(args)
        return
    builds_table([int(n) for n in args.groups.split(",")])
    if args.real:
        real(args)


if __name__ == "__main__":
    main()
