"""Benchmark: `envrepro build` of a real TF 2.21 snapshot on the local debootstrap base, measured in one run.

- cold build (no layer cache) and warm rebuild of the unchanged snapshot; ratio warm/cold (goal <= 0.05);
- final image size vs its floor: the base image + the installed packages' size on disk (goal <= 1.02);
- final image size vs a naive single-stage `pip install -r` image of the same lock on the same base
  (goal <= 1.0); and what each difference is made of (the layers of each image).

usage: python bench/build_bench.py [--python PATH] [--base-image IMAGE]
(default PATH: the tf-2.21.0 test environment of tests/support/envs.py; base: the test base image)
"""

from __future__ import annotations

import argparse
import io
import subprocess
import sys
import tarfile
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tests" / "support"))

from envrepro.build import BuildRequest, build, build_secrets
from envrepro.context import pip_config_files
from envrepro.engine import DockerEngine
from envrepro.runner import Limits, run_command

NAIVE_TAG = "envrepro-bench/naive:single-stage"
TAG = "envrepro-bench/tf221:cpu"
NAIVE_DOCKERFILE = """FROM {base}
COPY pip/ /tmp/envrepro-pip/
COPY requirements.lock.txt /tmp/requirements.lock.txt
RUN python3 -m venv /opt/venv \\
 && PIP_CONFIG_FILE=/tmp/envrepro-pip/pip.conf /opt/venv/bin/pip install -r /tmp/requirements.lock.txt
ENV PATH=/opt/venv/bin:$PATH
"""


def mb(size: int) -> str:
    return f"{size / 1e6:,.1f} MB"


def timed_build(request: BuildRequest, engine: DockerEngine) -> tuple[float, str, int]:
    started = time.perf_counter()
    result = build(request, lambda: engine)
    elapsed = time.perf_counter() - started
    assert result.image is not None
    return elapsed, result.image.image_id, result.image.size_bytes


def du_venv(engine: DockerEngine, image: str) -> int:
    run = run_command(engine, image, ["du", "-sb", "/opt/venv"], Limits(timeout_s=300))
    return int(run.logs.split()[0])


def naive_image(engine: DockerEngine, build_dir: Path, base: str, request: BuildRequest) -> int:
    files = {
        "Dockerfile": NAIVE_DOCKERFILE.format(base=base).encode(),
        "requirements.lock.txt": (build_dir / "requirements.lock.txt").read_bytes(),
        **dict(pip_config_files(build_secrets(request))),
    }
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w") as archive:
        for name, data in sorted(files.items()):
            info = tarfile.TarInfo(name)
            info.size = len(data)
            archive.addfile(info, io.BytesIO(data))
    return engine.build(buffer.getvalue(), tag=NAIVE_TAG).size_bytes


def layers(engine: DockerEngine, image: str) -> list[str]:
    history = engine.api.history(image)  # type: ignore[no-untyped-call]
    return [
        f"{mb(int(layer['Size'])):>12}  {str(layer['CreatedBy'])[:90]}" for layer in history if layer["Size"]
    ]


def goal(name: str, ratio: float, limit: float) -> str:
    return f"{name}: {ratio:.4f} (goal <= {limit}) -> {'MET' if ratio <= limit else 'NOT MET'}"


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--python", default=None)
    parser.add_argument("--base-image", default="envrepro-test/python:3.11-bookworm")
    args = parser.parse_args()
    if args.python is None:
        import envs

        args.python = str(envs.ensure("tf-2.21.0"))
    engine = DockerEngine()
    with tempfile.TemporaryDirectory() as tmp:
        snap = Path(tmp) / "envrepro.lock.json"
        argv = [sys.executable, "-m", "envrepro", "snapshot", "--python", args.python, "-o", str(snap)]
        subprocess.run(argv, check=True, capture_output=True)
        request = BuildRequest(snapshot_path=snap, out_dir=Path(tmp) / "build", target="cpu",
                               base_image=args.base_image, tag=TAG)  # fmt: skip
        build(
            BuildRequest(**{**request.__dict__, "render_only": True}), lambda: engine
        )  # lock outside the timing
        cold, image_id, size = timed_build(BuildRequest(**{**request.__dict__, "no_cache": True}), engine)
        warm, warm_id, _ = timed_build(request, engine)
        base_size = engine.inspect_image(args.base_image).size_bytes
        venv = du_venv(engine, TAG)
        naive = naive_image(engine, request.out_dir, args.base_image, request)
        print(f"snapshot: {args.python}; base {args.base_image} ({mb(base_size)})")
        print(f"cold build (no cache): {cold:.1f} s")
        print(f"warm rebuild:          {warm:.2f} s (same image: {warm_id == image_id})")
        print(goal("warm/cold ratio", warm / cold, 0.05))
        floor = base_size + venv
        print(f"image {mb(size)}; floor = base {mb(base_size)} + venv on disk {mb(venv)} = {mb(floor)}")
        print(goal("image/floor ratio", size / floor, 1.02))
        print(f"naive single-stage image: {mb(naive)}")
        print(goal("image/naive ratio", size / naive, 1.0))
        print("\nlayers of the envrepro image (newest first):")
        print("\n".join(layers(engine, TAG)))
        print("\nlayers of the naive image (newest first):")
        print("\n".join(layers(engine, NAIVE_TAG)))
        engine.remove_image(NAIVE_TAG)
        engine.remove_image(TAG)
    return 0


if __name__ == "__main__":
    sys.exit(main())
