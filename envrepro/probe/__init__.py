"""The probe: standard-library-only scripts that run inside the *target* interpreter (or image).

Nothing in this package may import a third-party module at import time, nor another envrepro module:
`main.py` puts this directory on sys.path and imports its siblings by their bare names. A module that
needs a sibling tries the relative import first (imported by envrepro as `envrepro.probe.X`) and falls back
to the bare name (run by main.py). Python 3.8 syntax throughout: the target may be that old.
"""
