"""Supabase Storage through supabase-py (``storage3``), with the service-role key.

The service-role key bypasses the bucket's row-level security: only the backend holds it, and
browsers reach objects through our routes or short-lived signed URLs, never with that key.
Wire format and errors: ``../shared/docs/supabase.md`` §3 (errors come back as HTTP 400 with
the real status in the body, which storage3 raises as ``StorageApiError(.status)``).
"""

from __future__ import annotations

import io
from typing import BinaryIO

import httpx
from storage3.exceptions import StorageApiError
from storage3.types import URLOptions
from supabase import ClientOptions, create_client

from arcano_tools.storage.base import ObjectNotFound, StorageError, check_key

#: Seconds one Storage call may take (an upload of a large result included).
STORAGE_TIMEOUT_S = 60.0
#: A job's uploads are one or two files; a folder listing this long is far more than enough.
FOLDER_LIST_LIMIT = 100
#: What Storage says (``statusCode`` in its error body) for a missing object or bucket.
_NOT_FOUND = "404"


class SupabaseStorage:
    """One private bucket (created at start if missing) holding inputs and results."""

    def __init__(self, url: str, service_role_key: str, bucket: str) -> None:
        # its own TLS context (built once, here): it is used from worker threads (arcano_tools.tls)
        self._http = httpx.Client(timeout=STORAGE_TIMEOUT_S)
        options = ClientOptions(
            auto_refresh_token=False,
            persist_session=False,
            # our own client: one connection pool, a timeout, and no deprecation warnings
            httpx_client=self._http,
        )
        self._client = create_client(url, service_role_key, options)
        self.bucket = bucket
        self._files = self._client.storage.from_(bucket)

    def ensure_bucket(self) -> None:
        """Create the bucket (private) if it does not exist yet; idempotent."""
        try:
            self._client.storage.get_bucket(self.bucket)
        except StorageApiError as exc:
            if str(exc.status) != _NOT_FOUND:
                raise StorageError(f"bucket {self.bucket}: {exc.message}") from exc
            self._client.storage.create_bucket(self.bucket, options={"public": False})

    def put(self, key: str, data: bytes, content_type: str) -> None:
        try:
            self._files.upload(
                check_key(key), data, {"content-type": content_type, "upsert": "true"}
            )
        except StorageApiError as exc:
            raise StorageError(f"upload {key}: {exc.message}") from exc

    def read(self, key: str) -> bytes:
        try:
            return self._files.download(check_key(key))
        except StorageApiError as exc:
            raise _error("download", key, exc) from exc

    def open(self, key: str) -> BinaryIO:
        return io.BytesIO(self.read(key))

    def size(self, key: str) -> int:
        """From the folder's listing, searched by the object's name (Storage's list answers
        each object's ``metadata.size``; no download)."""
        folder, _, name = check_key(key).rpartition("/")
        try:
            listed = self._files.list(folder, {"limit": FOLDER_LIST_LIMIT, "search": name})
        except StorageApiError as exc:
            raise _error("size", key, exc) from exc
        for item in listed:
            if item.get("name") == name and isinstance(item.get("metadata"), dict):
                size = item["metadata"].get("size")
                if isinstance(size, int):
                    return size
        raise ObjectNotFound(key)

    def signed_url(
        self, key: str, *, expires_in_s: int, download_name: str | None = None
    ) -> str | None:
        options: URLOptions = {"download": download_name} if download_name else {}
        try:
            signed = self._files.create_signed_url(check_key(key), expires_in_s, options)
        except StorageApiError as exc:
            raise _error("sign", key, exc) from exc
        return str(signed["signedURL"])

    def delete(self, key: str) -> None:
        try:
            self._files.remove([check_key(key)])
        except StorageApiError as exc:
            raise StorageError(f"remove {key}: {exc.message}") from exc

    def delete_folder(self, prefix: str) -> None:
        folder = check_key(prefix)
        try:
            listed = self._files.list(folder, {"limit": FOLDER_LIST_LIMIT})
            names = [f"{folder}/{item['name']}" for item in listed]
            if names:
                self._files.remove(names)
        except StorageApiError as exc:
            raise StorageError(f"remove {prefix}/: {exc.message}") from exc

    def close(self) -> None:
        self._http.close()


def _error(action: str, key: str, exc: StorageApiError) -> StorageError:
    """A missing object is :class:`ObjectNotFound`; a missing bucket (also a 404) is a
    configuration error, never "the file is gone"."""
    if str(exc.status) == _NOT_FOUND and "bucket" not in str(exc.message).lower():
        return ObjectNotFound(key)
    return StorageError(f"{action} {key}: {exc.message}")
