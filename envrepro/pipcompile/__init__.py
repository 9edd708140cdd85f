"""`run.py`: pip-compile, taking each file's sha256 from the index instead of downloading the file.

The same script runs on the host (`python run.py compile ...`) and in the lock container (uploaded as bytes
next to requirements.in), so both places resolve and hash alike. It imports nothing from envrepro: its
directory holds no other module, so running it by path shadows nothing pip or pip-tools import.
"""

from pathlib import Path

SCRIPT = Path(__file__).resolve().parent / "run.py"
