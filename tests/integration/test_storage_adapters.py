"""The storage seam's two adapters, held to one behaviour: the local folder, and Supabase
Storage through the real supabase-py client against a local server speaking Storage's wire
format (``tests/support/supabase_storage_server.py``)."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import httpx
import pytest

from arcano_tools.storage import ObjectNotFound, ObjectStorage, StorageError
from arcano_tools.storage.local import LocalStorage
from arcano_tools.storage.supabase import SupabaseStorage
from tests.support.supabase_storage_server import (
    SERVICE_ROLE_KEY,
    RunningStorage,
    running_storage_server,
)

BUCKET = "arcano-test"
#: More objects in one folder than one listing returns (the Supabase adapter's 100).
FOLDER_NEIGHBOURS = 120


@pytest.fixture(scope="module")
def storage_server() -> Iterator[RunningStorage]:
    with running_storage_server() as server:
        yield server


@contextmanager
def supabase(
    server: RunningStorage, bucket: str = BUCKET, key: str = SERVICE_ROLE_KEY
) -> Iterator[SupabaseStorage]:
    adapter = SupabaseStorage(server.url, key, bucket)
    try:
        yield adapter
    finally:
        adapter.close()


@pytest.fixture(params=["local", "supabase"])
def storage(
    request: pytest.FixtureRequest, tmp_path: Path, storage_server: RunningStorage
) -> Iterator[ObjectStorage]:
    if request.param == "local":
        yield LocalStorage(tmp_path)
        return
    with supabase(storage_server) as adapter:
        adapter.ensure_bucket()
        yield adapter


def test_put_read_open_delete(storage: ObjectStorage) -> None:
    storage.put("results/t/job-1.png", b"first", "image/png")
    storage.put("results/t/job-1.png", b"second", "image/png")  # a retried copy overwrites
    assert storage.read("results/t/job-1.png") == b"second"
    with storage.open("results/t/job-1.png") as f:
        assert f.read() == b"second"
    storage.delete("results/t/job-1.png")
    with pytest.raises(ObjectNotFound):
        storage.read("results/t/job-1.png")
    storage.delete("results/t/job-1.png")  # gone already: no error


def test_size_is_the_objects_length_without_reading_it(storage: ObjectStorage) -> None:
    """The page's "· 6,1 MB" for a result in our storage: asked of the storage, by name
    among a folder of others (Supabase: a listing searched by the name)."""
    for i in range(FOLDER_NEIGHBOURS):
        storage.put(f"results/t/job-{i:03d}.png", b"x" * i, "image/png")
    storage.put("results/t/zz-result.png", b"result!", "image/png")  # listed after them all
    assert storage.size("results/t/zz-result.png") == len(b"result!")
    assert storage.size(f"results/t/job-{FOLDER_NEIGHBOURS - 1:03d}.png") == FOLDER_NEIGHBOURS - 1
    with pytest.raises(ObjectNotFound):
        storage.size("results/t/job-none.png")


def test_missing_object_is_a_file_not_found(storage: ObjectStorage) -> None:
    """The queue manager fails a job whose input vanished on ``FileNotFoundError``."""
    with pytest.raises(FileNotFoundError):
        storage.read("uploads/t/nope/image.png")


def test_unsafe_keys_are_refused(storage: ObjectStorage) -> None:
    for key in ["../x", "a//b", "/abs", ".hidden", "a/../b", "a b", ""]:
        with pytest.raises(ValueError, match="not a storage key"):
            storage.put(key, b"x", "text/plain")


def test_delete_folder_removes_that_folder_only(storage: ObjectStorage) -> None:
    for key in ("uploads/t/j1/image.png", "uploads/t/j1/pose.png", "uploads/t/j2/image.png"):
        storage.put(key, b"x", "image/png")
    storage.delete_folder("uploads/t/j1")
    with pytest.raises(ObjectNotFound):
        storage.read("uploads/t/j1/pose.png")
    assert storage.read("uploads/t/j2/image.png") == b"x"


def test_supabase_signed_url_serves_an_attachment(storage_server: RunningStorage) -> None:
    with supabase(storage_server) as adapter:
        adapter.ensure_bucket()
        _signed_url_checks(adapter, storage_server)


def _signed_url_checks(adapter: SupabaseStorage, storage_server: RunningStorage) -> None:
    adapter.put("results/t/job-2.png", b"\x89PNG-bytes", "image/png")
    stored = storage_server.state.objects[(BUCKET, "results/t/job-2.png")]
    assert stored.content_type == "image/png"  # not storage3's text/plain default

    url = adapter.signed_url("results/t/job-2.png", expires_in_s=60, download_name="a b.png")
    assert url is not None
    assert url.startswith(storage_server.url + "/storage/v1/object/sign/")
    got = httpx.get(url)  # no keys: the browser's request
    assert got.status_code == 200
    assert got.content == b"\x89PNG-bytes"
    assert got.headers["content-disposition"] == 'attachment; filename="a b.png"'

    expired = adapter.signed_url("results/t/job-2.png", expires_in_s=-1)
    assert expired is not None
    refused = httpx.get(expired)
    assert refused.status_code == 400
    assert refused.json()["error"] == "InvalidJWT"


def test_supabase_errors_become_storage_errors(storage_server: RunningStorage) -> None:
    with supabase(storage_server) as adapter, pytest.raises(ObjectNotFound):
        adapter.signed_url("results/t/none.png", expires_in_s=60)
    with (
        supabase(storage_server, key="not-the-service-role-key") as wrong_key,
        pytest.raises(StorageError, match="row-level security"),
    ):
        wrong_key.put("results/t/x.png", b"x", "image/png")
    with (
        supabase(storage_server, bucket="no-such-bucket") as no_bucket,
        pytest.raises(StorageError, match="Bucket not found"),
    ):
        no_bucket.read("a/b.png")


def test_ensure_bucket_is_idempotent_and_private(storage_server: RunningStorage) -> None:
    with supabase(storage_server, bucket="fresh-bucket") as adapter:
        adapter.ensure_bucket()
        adapter.ensure_bucket()
    assert storage_server.state.buckets["fresh-bucket"]["public"] is False
    assert storage_server.state.requests.count(("POST", "/storage/v1/bucket")) >= 1
