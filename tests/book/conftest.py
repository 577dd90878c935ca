"""The book tests' helpers: book_checks.py sits next to this file."""

import sys
from pathlib import Path

# book_checks.py sits next to this file; make it importable however pytest was started.
sys.path.insert(0, str(Path(__file__).resolve().parent))
