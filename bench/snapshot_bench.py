"""Benchmark: `envrepro snapshot` of a TensorFlow environment vs. the floor of reading it by hand.

Baseline, measured in the same run on the same environment: `python -c "import tensorflow"` followed by
`python -m pip freeze` in that environment (what a person would run to record it). Goal: ratio <= 1.3.

usage: python bench/snapshot_bench.py [--python PATH] [--repeat N]
(default PATH: the tf-2.21.0 test environment of tests/support/envs.py, created if missing)
"""

from __future__ import annotations

import argparse
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tests" / "support"))


def timed(argv: list[str]) -> float:
    started = time.perf_counter()
    subprocess.run(argv, check=True, capture_output=True)
    return time.perf_counter() - started


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--python", default=None)
    parser.add_argument("--repeat", type=int, default=5)
    args = parser.parse_args()
    if args.python is None:
        import envs

        args.python = str(envs.ensure("tf-2.21.0"))
    py = args.python
    baseline, ours = [], []
    with tempfile.TemporaryDirectory() as tmp:
        out = str(Path(tmp) / "s.json")
        timed(
            [sys.executable, "-m", "envrepro", "snapshot", "--python", py, "-o", out]
        )  # warm the page cache
        for _ in range(args.repeat):
            baseline.append(timed([py, "-c", "import tensorflow"]) + timed([py, "-m", "pip", "freeze"]))
            ours.append(timed([sys.executable, "-m", "envrepro", "snapshot", "--python", py, "-o", out]))
    base, mine = statistics.median(baseline), statistics.median(ours)
    print(f"environment: {py}")
    print(f"baseline (import tensorflow + pip freeze), median of {args.repeat}: {base:.2f} s")
    print(f"envrepro snapshot, median of {args.repeat}: {mine:.2f} s")
    print(f"ratio: {mine / base:.2f} (goal <= 1.30) -> {'MET' if mine / base <= 1.3 else 'NOT MET'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
