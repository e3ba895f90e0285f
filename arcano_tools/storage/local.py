"""The embedded default: files in a folder under the data directory, served by the backend."""

from __future__ import annotations

import contextlib
import os
import shutil
import tempfile
from pathlib import Path
from typing import BinaryIO

from arcano_tools.storage.base import ObjectNotFound, check_key


class LocalStorage:
    """Keys are paths under ``root`` (the data directory: inputs written before this seam
    existed keep their keys). Only for one machine: every backend process must see ``root``."""

    def __init__(self, root: Path) -> None:
        self.root = root
        #: The folder's real path, resolved once (resolving it per call was half the cost of
        #: a submission's file write: BENCHMARKS.md, item 19).
        self._real_root = root.resolve()

    def path_of(self, key: str) -> Path:
        """The file of ``key``; ``ValueError`` for a key, or a symlink, leading outside."""
        path = (self.root / check_key(key)).resolve()
        if not path.is_relative_to(self._real_root):
            raise ValueError(f"{key[:80]!r} leads outside the storage folder")
        return path

    def put(self, key: str, data: bytes, content_type: str) -> None:
        """Write through a temporary file and a rename: a reader never sees half a file."""
        path = self.path_of(key)
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=".put-")
        try:
            with os.fdopen(fd, "wb") as out:
                out.write(data)
            os.replace(tmp, path)
        except BaseException:
            with contextlib.suppress(OSError):
                os.unlink(tmp)
            raise

    def read(self, key: str) -> bytes:
        with self.open(key) as f:
            return f.read()

    def open(self, key: str) -> BinaryIO:
        try:
            return self.path_of(key).open("rb")
        except FileNotFoundError:
            raise ObjectNotFound(key) from None

    def size(self, key: str) -> int:
        try:
            return self.path_of(key).stat().st_size
        except FileNotFoundError:
            raise ObjectNotFound(key) from None

    def signed_url(
        self,
        key: str,
        *,
        expires_in_s: int,
        download_name: str | None = None,
    ) -> str | None:
        return None  # the backend streams the file itself

    def delete(self, key: str) -> None:
        self.path_of(key).unlink(missing_ok=True)

    def delete_folder(self, prefix: str) -> None:
        shutil.rmtree(self.path_of(prefix), ignore_errors=True)

    def close(self) -> None:
        """Nothing to release (no connections)."""
