"""Atomic file writes: a reader sees either the previous file or the complete new one.

Every writer here writes to a temporary file in the target's directory (so the final
``os.replace`` stays on one file system), flushes and fsyncs it, then replaces the target with
it. On any error, ``KeyboardInterrupt`` included, the temporary file is removed and the target
is left as it was. Temporary names are ``.tmp-<pid>-<random>-<target name>``: hidden, unique per
writer, and keeping the target's extension (matplotlib and numpy choose the format from it).
Files are created with the process umask, like a plain ``open``.

Example::

    from irgeodiff_jax.utils import atomic

    atomic.write_json("/tmp/run/summary.json", {"steps": 10})
    with atomic.replacing("/tmp/run/plot.png") as tmp:
        figure.savefig(tmp)
"""

import contextlib
import io
import json
import os
import uuid
from collections.abc import Iterator, Mapping

import numpy as np

TMP_PREFIX = ".tmp-"


def _temporary_name(path: str) -> str:
    directory, name = os.path.split(os.path.abspath(path))
    return os.path.join(directory, f"{TMP_PREFIX}{os.getpid()}-{uuid.uuid4().hex[:8]}-{name}")


def _fsync(path: str) -> None:
    with open(path, "rb") as f:
        os.fsync(f.fileno())


@contextlib.contextmanager
def replacing(path: str) -> Iterator[str]:
    """A temporary path to write; when the block ends without error it replaces ``path``.

    The parent directory is created if needed. Use this for writers that take a file name
    (``savefig``, ``zipfile``, ``shutil.copyfile``); ``write_bytes`` for data in memory.

    Raises:
        FileNotFoundError: the block did not create the temporary file.
    """
    os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
    tmp = _temporary_name(path)
    try:
        yield tmp
        _fsync(tmp)
        os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)


def write_bytes(path: str, data: bytes) -> None:
    """Atomically writes ``data`` to ``path`` (parent directory created if needed)."""
    with replacing(path) as tmp, open(tmp, "xb") as f:
        f.write(data)


def write_text(path: str, text: str) -> None:
    """Atomically writes ``text`` (UTF-8)."""
    write_bytes(path, text.encode())


def write_json(path: str, obj) -> None:
    """Atomically writes ``obj`` as indented JSON with sorted keys and a final newline."""
    write_text(path, json.dumps(obj, indent=2, sort_keys=True) + "\n")


def savez(path: str, arrays: Mapping[str, np.ndarray]) -> None:
    """Atomically writes ``arrays`` as an uncompressed ``.npz``."""
    buf = io.BytesIO()
    np.savez(buf, **arrays)
    write_bytes(path, buf.getvalue())
