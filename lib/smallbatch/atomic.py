"""One way to write a file atomically: a temporary file in the same folder, then a rename.

A reader (or a sweep that restarts after being killed) sees the old file or the whole new
one, never part of it. Used by the record store (run and measurement records, book: "The
sweep engine"), the CSV tables of the stored trials and the cache of decoded data. It
imports nothing of the package, so every layer can use it: the data readers sit below the
store and cannot import it.
"""

from __future__ import annotations

import os
import tempfile
from pathlib import Path
from typing import IO, Any, Callable

__all__ = ["TEMPORARY_PREFIX", "TEMPORARY_SUFFIX", "write_atomic"]

# A temporary file is ".<random>.tmp" beside its target: hidden, and found again by
# smallbatch.store.remove_stale_temporaries when a writer was killed mid-write.
TEMPORARY_PREFIX = "."
TEMPORARY_SUFFIX = ".tmp"


def write_atomic(path: str | os.PathLike, write: Callable[[IO[Any]], object], *,
                 binary: bool = False) -> Path:
    """Write ``path`` by calling ``write(handle)`` on a temporary file beside it, then rename
    the temporary file onto ``path``; return ``path``.

    The content is flushed to disk before the rename, so a crash never leaves half a file
    under ``path``; if ``write`` (or anything before the rename) fails, the temporary file
    is removed and the error raised, and an existing ``path`` is left as it was. Creates
    the folder. The file is readable by all (0o644: records, a web page's tables, a cache
    that may be shared).

    Args:
        path: the file to write.
        write: writes the content to the open handle it is given.
        binary: a binary handle; else text, UTF-8, line ends written as given.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    descriptor, temporary = tempfile.mkstemp(dir=path.parent, prefix=TEMPORARY_PREFIX,
                                             suffix=TEMPORARY_SUFFIX)
    try:
        handle = (os.fdopen(descriptor, "wb") if binary
                  else os.fdopen(descriptor, "w", encoding="utf-8", newline=""))
        with handle:
            write(handle)
            handle.flush()
            os.fsync(handle.fileno())
        os.chmod(temporary, 0o644)  # mkstemp makes it owner-only
        os.replace(temporary, path)
    except BaseException:
        Path(temporary).unlink(missing_ok=True)
        raise
    return path
