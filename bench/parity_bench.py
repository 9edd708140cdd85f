"""Benchmark: `envrepro parity` on a small CNN vs a bare `docker run` of the same image doing the same work.

Baseline, measured in the same run: `docker run` of the image (no network, the model and the inputs mounted
read-only) with a script that loads the model and predicts the same inputs with the same batch size.
Goals: parity/bare <= 1.3 at 1,000 inputs; time linear in inputs from 1,000 to 100,000 (one container and
one process per run, never one per input): the marginal cost per input of parity stays close to bare's.

usage: python bench/parity_bench.py [--python PATH] [--image IMAGE] [--sizes 1000,100000] [--repeat N]
(default PATH: the tf-2.21.0 test environment; IMAGE: envrepro-test/tf221:cpu, built by the tests)
"""

from __future__ import annotations

import argparse
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from envrepro.engine import DockerEngine
from envrepro.probe.modelprobe import BATCH_SIZE

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "tests" / "support"))

BARE = f"""
import sys, numpy as np, keras
x = np.load(sys.argv[2])["input.0"]
y = keras.models.load_model(sys.argv[1]).predict(x, batch_size={BATCH_SIZE}, verbose=0)
print(y.shape)
"""


def timed(argv: list[str]) -> float:
    started = time.perf_counter()
    subprocess.run(argv, check=True, capture_output=True)
    return time.perf_counter() - started


def snapshot(python: str, model: Path, samples: int, folder: Path) -> tuple[Path, Path]:
    snap = folder / f"n{samples}" / "envrepro.lock.json"
    snap.parent.mkdir(parents=True)
    argv = [sys.executable, "-m", "envrepro", "snapshot", "--python", python, "--model", str(model)]
    subprocess.run([*argv, "--samples", str(samples), "-o", str(snap)], check=True, capture_output=True)
    return snap, next((snap.parent / "envrepro.lock.ref").glob("*.npz"))


def bare(engine: DockerEngine, image: str, model: Path, reference: Path, script: Path) -> float:
    """A bare `docker run` with bind mounts (the baseline; it raises when the container fails)."""
    volumes = {
        str(model): {"bind": "/bench/model.keras", "mode": "ro"},
        str(reference): {"bind": "/bench/ref.npz", "mode": "ro"},
        str(script): {"bind": "/bench/b.py", "mode": "ro"},
    }
    started = time.perf_counter()
    command = ["python", "/bench/b.py", "/bench/model.keras", "/bench/ref.npz"]
    env = {"TF_CPP_MIN_LOG_LEVEL": "2"}
    engine.client.containers.run(
        image, command, volumes=volumes, user="10001:10001", mem_limit="4g", environment=env,
        network_disabled=True, remove=True,
    )  # fmt: skip
    return time.perf_counter() - started


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--python", default=None)
    parser.add_argument("--image", default="envrepro-test/tf221:cpu")
    parser.add_argument("--sizes", default="1000,100000")
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args()
    if args.python is None:
        import envs

        args.python = str(envs.ensure("tf-2.21.0"))
    engine = DockerEngine()
    sizes = [int(n) for n in args.sizes.split(",")]
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        subprocess.run([args.python, str(ROOT / "tests" / "support" / "make_models.py"), str(folder / "m")],
                       check=True, capture_output=True)  # fmt: skip
        model = folder / "m" / "cnn.keras"
        script = folder / "bare.py"
        script.write_text(BARE, encoding="utf-8")
        for samples in sizes:
            snap, reference = snapshot(args.python, model, samples, folder)
            parity = [sys.executable, "-m", "envrepro", "parity", "--model", str(model)]
            parity += ["--snapshot", str(snap), "--image", args.image]
            timed(parity)  # warm the page cache and the engine
            ours = statistics.median(timed(parity) for _ in range(args.repeat))
            base = statistics.median(
                bare(engine, args.image, model, reference, script) for _ in range(args.repeat)
            )
            rows.append((samples, ours, base))
            print(f"{samples:>7} inputs: envrepro parity {ours:6.2f} s, bare docker run {base:6.2f} s, "
                  f"ratio {ours / base:.2f}")  # fmt: skip
    small, large = rows[0], rows[-1]
    print(f"\nratio at {small[0]} inputs: {small[1] / small[2]:.2f} (goal <= 1.3) -> "
          f"{'MET' if small[1] / small[2] <= 1.3 else 'NOT MET'}")  # fmt: skip
    if len(rows) > 1:
        growth = large[0] / small[0]
        per_input_ours = (large[1] - small[1]) / (large[0] - small[0]) * 1e6
        per_input_bare = (large[2] - small[2]) / (large[0] - small[0]) * 1e6
        print(f"{growth:.0f}x the inputs: parity x{large[1] / small[1]:.2f}, bare x{large[2] / small[2]:.2f}")
        marginal = per_input_ours / per_input_bare
        print(f"marginal cost per input: parity {per_input_ours:.1f} us, bare {per_input_bare:.1f} us")
        print(f"marginal ratio {marginal:.2f}: one container and one process per run, whatever the inputs")
    return 0


if __name__ == "__main__":
    sys.exit(main())
