"""The one atomic file writer (smallbatch.atomic) and the three places that use it: the
record store, the CSV tables and the cache of decoded data."""

import json
import stat

import numpy as np
import pytest

from smallbatch.atomic import TEMPORARY_PREFIX, TEMPORARY_SUFFIX, write_atomic
from smallbatch.store import remove_stale_temporaries, write_json_atomic


def temporaries(folder):
    return sorted(folder.glob(f"{TEMPORARY_PREFIX}*{TEMPORARY_SUFFIX}"))


def test_no_partial_file_is_ever_visible(tmp_path):
    """While the content is written, the target holds the old file whole (or is absent)
    and the content goes to one temporary file beside it; the rename makes it appear."""
    path = tmp_path / "sub" / "record.json"
    seen = []

    def write(handle):
        handle.write("first half, ")
        handle.flush()
        seen.append((path.exists(), temporaries(path.parent)))
        handle.write("second half")

    assert write_atomic(path, write) == path  # the folder is created
    (exists, (temporary,)), = seen
    assert not exists and temporary.parent == path.parent
    assert path.read_text() == "first half, second half"
    assert not temporary.exists()

    def rewrite(handle):
        handle.write("new")
        seen.append(path.read_text())

    write_atomic(path, rewrite)
    assert seen[-1] == "first half, second half" and path.read_text() == "new"


@pytest.mark.parametrize("error", [ValueError("disk full"), KeyboardInterrupt()])
def test_an_error_leaves_the_old_file_and_no_temporary(tmp_path, error):
    path = tmp_path / "table.csv"
    path.write_text("old")

    def write(handle):
        handle.write("half of the new content")
        raise error

    with pytest.raises(type(error)):
        write_atomic(path, write)
    assert path.read_text() == "old"
    assert list(tmp_path.iterdir()) == [path]


def test_text_is_utf8_as_given_binary_as_is_and_readable_by_all(tmp_path):
    text = write_atomic(tmp_path / "a.txt", lambda handle: handle.write("η̃ = 2^-8\r\nm\n"))
    assert text.read_bytes() == "η̃ = 2^-8\r\nm\n".encode("utf-8")
    arrays = write_atomic(tmp_path / "a.npz", lambda handle: np.savez(handle, x=np.arange(3)),
                          binary=True)
    with np.load(arrays) as loaded:
        assert loaded["x"].tolist() == [0, 1, 2]
    for path in (text, arrays):
        assert stat.S_IMODE(path.stat().st_mode) == 0o644


def test_the_store_writes_records_through_it_and_finds_its_leftovers(tmp_path):
    """A JSON record keeps its format (sorted keys, indent 1, a final newline), and the
    temporary file a killed writer would leave is one the store's clean-up removes."""
    payload = {"b": [1, 2], "a": "x"}
    path = write_json_atomic(payload, tmp_path / "run.json")
    assert path.read_text() == json.dumps(payload, indent=1, sort_keys=True) + "\n"
    left = []
    write_atomic(tmp_path / "other.json", lambda handle: left.extend(temporaries(tmp_path)))
    assert len(left) == 1
    left[0].write_text("{")  # as a writer killed mid-write leaves it
    assert remove_stale_temporaries(tmp_path) == left and not left[0].exists()
