"""The storage seam: what the services ask of a place that keeps files.

Keys are relative, slash-separated paths (``uploads/<table>/<job>/image.png``,
``results/<table>/<job>.png``); every adapter refuses anything else, so no key can climb out of
its folder or bucket. The methods are synchronous (the local adapter is plain file I/O, the
Supabase one a blocking HTTP client): callers in the event loop run them in a thread.
"""

from __future__ import annotations

import re
from typing import BinaryIO, Protocol

#: One key segment: letters, digits, ``_ - .``, not starting with a dot (no ``..``, no hidden
#: files), at most 128 characters.
_SEGMENT = re.compile(r"[A-Za-z0-9_-][A-Za-z0-9_.-]{0,127}")
#: Keys are a few segments deep; longer paths are a bug, not a need.
MAX_KEY_SEGMENTS = 6


class StorageError(Exception):
    """The storage refused or failed an operation (a network error, a full disk, a 5xx)."""


class ObjectNotFound(StorageError, FileNotFoundError):
    """No object under that key. Also a ``FileNotFoundError``: the callers that read inputs
    treat a vanished upload the same way, whichever adapter keeps it."""


def check_key(key: str) -> str:
    """``key`` itself if it is a safe relative key; raises ``ValueError`` otherwise."""
    parts = key.split("/")
    if not 1 <= len(parts) <= MAX_KEY_SEGMENTS or not all(_SEGMENT.fullmatch(p) for p in parts):
        raise ValueError(f"not a storage key (it could point outside the storage): {key[:80]!r}")
    return key


class ObjectStorage(Protocol):
    """A place that keeps files by key: a local folder, or a Supabase Storage bucket."""

    def put(self, key: str, data: bytes, content_type: str) -> None:
        """Store ``data`` under ``key`` (replacing what was there: writes are idempotent)."""

    def read(self, key: str) -> bytes:
        """The object's bytes; raises :class:`ObjectNotFound`."""

    def open(self, key: str) -> BinaryIO:
        """The object as a readable binary stream (the caller closes it); raises
        :class:`ObjectNotFound`."""

    def size(self, key: str) -> int:
        """The object's length in bytes; raises :class:`ObjectNotFound`."""

    def signed_url(
        self, key: str, *, expires_in_s: int, download_name: str | None = None
    ) -> str | None:
        """A short-lived URL a browser may fetch the object from directly (with
        ``download_name``: served as an attachment of that name), or ``None`` when the backend
        serves the object itself (the local folder)."""

    def delete(self, key: str) -> None:
        """Remove the object (no error when it is already gone)."""

    def delete_folder(self, prefix: str) -> None:
        """Remove every object directly under ``prefix/`` (a job's uploads)."""

    def close(self) -> None:
        """Release connections (the Supabase adapter's HTTP client)."""
