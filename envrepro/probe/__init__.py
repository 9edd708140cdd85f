"""The probe: standard-library-only scripts that run inside the *target* interpreter (or image).

Nothing in this package may import a third-party module at import time, nor another envrepro module:
`main.py` puts this directory on sys.path and imports its siblings by their bare names. A module that
needs a sibling tries the relative import first (imported by envrepro as `envrepro.probe.X`) and falls back
to the bare name (run by main.py). Python 3.8 syntax throughout: the target may be that old.

This __init__ runs only in envrepro (not in the target): it says where the probe's files are.
"""

from pathlib import Path

PROBE_DIR = Path(__file__).resolve().parent  # copied into the image's containers, run by the target
