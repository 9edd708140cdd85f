"""The user's preprocessing: standardise 8 raw features with statistics read from stats.json next to it.

Identical in training/ and serving/; only stats.json differs, as when a serving deployment ships
statistics recomputed on other data (the classic training/serving skew).
"""

import json
from pathlib import Path

import numpy as np

STATS = json.loads((Path(__file__).resolve().parent / "stats.json").read_text(encoding="utf-8"))


def normalise(raw):
    mean = np.asarray(STATS["mean"], dtype=np.float64)
    std = np.asarray(STATS["std"], dtype=np.float64)
    return ((raw - mean) / std).astype(np.float32)


def broken(raw):
    raise ValueError("no features today")
