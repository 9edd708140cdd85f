"""The probe: standard-library-only scripts that run inside the *target* interpreter (or image).

Nothing in this package may import a third-party module at import time, nor another envrepro module:
`main.py` puts this directory on sys.path and imports its siblings by their bare names.
"""
