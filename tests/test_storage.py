"""Per-tenant media storage (omnitenant_async.storage) on the schema tenants t00..t23."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Callable
from pathlib import Path
from types import SimpleNamespace
from typing import Any, cast

import pytest
from asgiref.sync import sync_to_async
from django.apps import apps
from django.conf import settings
from django.core.exceptions import ImproperlyConfigured, SuspiciousFileOperation
from django.core.files.base import ContentFile
from django.core.files.storage import DefaultStorage, InMemoryStorage, default_storage
from django.db import models
from django.db.models.fields.files import FieldFile
from django.test import override_settings

from omnitenant_async import tenant_context, use_master_db, use_schema
from omnitenant_async.exceptions import NoTenantActive
from omnitenant_async.storage import TenantFileSystemStorage, TenantPrefixMixin

BACKEND = "omnitenant_async.storage.TenantFileSystemStorage"


class MemoryTenantStorage(TenantPrefixMixin, InMemoryStorage):
    """The mixin on a storage that is not FileSystemStorage (the django-storages shape)."""


@pytest.fixture
def storage(tmp_path: Path) -> TenantFileSystemStorage:
    return TenantFileSystemStorage(location=tmp_path, base_url="/media/")


def read(storage: Any, name: str) -> bytes:
    with storage.open(name) as f:
        data: bytes = f.read()
    return data


def test_same_name_in_two_tenants_is_two_files(
    storage: TenantFileSystemStorage, tmp_path: Path, tenants: dict[str, Any]
) -> None:
    """Each tenant writes docs/report.txt; both files exist, each tenant reads its own."""
    for tid in ("t01", "t02"):
        with tenant_context(tenants[tid]):
            name = storage.save("docs/report.txt", ContentFile(f"{tid} data".encode()))
            assert name == "docs/report.txt"  # tenant-relative, as a FileField stores it
    assert (tmp_path / "t01/docs/report.txt").read_bytes() == b"t01 data"
    assert (tmp_path / "t02/docs/report.txt").read_bytes() == b"t02 data"
    for tid in ("t01", "t02"):
        with tenant_context(tenants[tid]):
            assert read(storage, "docs/report.txt") == f"{tid} data".encode()
            assert storage.path("docs/report.txt") == str(tmp_path / tid / "docs/report.txt")
            assert storage.size("docs/report.txt") == 8
            assert storage.listdir("") == (["docs"], [])
            assert storage.listdir("docs/") == ([], ["report.txt"])
            assert storage.get_modified_time("docs/report.txt") is not None


def test_exists_and_delete_are_per_tenant(
    storage: TenantFileSystemStorage, tmp_path: Path, tenants: dict[str, Any]
) -> None:
    with tenant_context(tenants["t01"]):
        storage.save("only-t01.txt", ContentFile(b"mine"))
        assert storage.exists("only-t01.txt")
    with tenant_context(tenants["t02"]):
        assert not storage.exists("only-t01.txt")
        with pytest.raises(FileNotFoundError):
            storage.open("only-t01.txt")
        storage.delete("only-t01.txt")  # t02's (missing) file, not t01's
    with tenant_context(tenants["t01"]):
        assert storage.exists("only-t01.txt")
        storage.delete("only-t01.txt")
        assert not storage.exists("only-t01.txt")
    assert not (tmp_path / "t01/only-t01.txt").exists()


def test_second_save_of_a_name_gets_a_tenant_relative_alternative(
    storage: TenantFileSystemStorage, tmp_path: Path, tenants: dict[str, Any]
) -> None:
    with tenant_context(tenants["t01"]):
        first = storage.save("a.txt", ContentFile(b"1"))
        second = storage.save("a.txt", ContentFile(b"2"))
        assert first == "a.txt"
        assert second != first and second.startswith("a_") and "/" not in second
        assert read(storage, second) == b"2"
    assert (tmp_path / "t01" / second).read_bytes() == b"2"
    with tenant_context(tenants["t02"]):
        # t02 has no a.txt yet, so it gets the plain name (availability is per tenant).
        assert storage.save("a.txt", ContentFile(b"3")) == "a.txt"


def test_url_follows_the_tenant(storage: TenantFileSystemStorage, tenants: dict[str, Any]) -> None:
    with tenant_context(tenants["t01"]):
        assert storage.url("docs/a b.txt") == "/media/t01/docs/a%20b.txt"
    with tenant_context(tenants["t02"]):
        assert storage.url("docs/a b.txt") == "/media/t02/docs/a%20b.txt"


ESCAPES = ["../t02/x", "/etc/passwd", "t02/../../x", "..\\t02\\x", "docs/../../t02/x", "..", ""]


@pytest.mark.parametrize("name", ESCAPES)
def test_names_leaving_the_tenant_are_refused(
    storage: TenantFileSystemStorage, tmp_path: Path, tenants: dict[str, Any], name: str
) -> None:
    with tenant_context(tenants["t02"]):
        storage.save("x", ContentFile(b"t02 secret"))
    calls: list[Callable[[], object]] = [
        lambda: storage.save(name, ContentFile(b"evil")),
        lambda: storage.open(name),
        lambda: storage.exists(name),
        lambda: storage.delete(name),
        lambda: storage.size(name),
        lambda: storage.url(name),
        lambda: storage.path(name),
        lambda: storage.get_modified_time(name),
        lambda: storage.get_accessed_time(name),
        lambda: storage.get_created_time(name),
    ]
    with tenant_context(tenants["t01"]):
        for call in calls:
            with pytest.raises(SuspiciousFileOperation):
                call()
        if name:  # "" lists the tenant's own root
            with pytest.raises(SuspiciousFileOperation):
                storage.listdir(name)
    assert (tmp_path / "t02/x").read_bytes() == b"t02 secret"
    assert sorted(p.relative_to(tmp_path).as_posix() for p in tmp_path.rglob("*")) == [
        "t02",
        "t02/x",
    ]


@pytest.mark.parametrize("path", ["/", "/etc/", "../", "sub/../../"])
def test_listdir_outside_the_tenant_is_refused(
    storage: TenantFileSystemStorage, tenants: dict[str, Any], path: str
) -> None:
    with tenant_context(tenants["t01"]), pytest.raises(SuspiciousFileOperation):
        storage.listdir(path)


def test_no_tenant_and_public_state_use_the_public_prefix(
    storage: TenantFileSystemStorage, tmp_path: Path, tenants: dict[str, Any]
) -> None:
    assert storage.save("logo.png", ContentFile(b"no tenant")) == "logo.png"
    with use_master_db():
        assert read(storage, "logo.png") == b"no tenant"
        assert storage.url("logo.png") == "/media/public/logo.png"
    assert (tmp_path / "public/logo.png").read_bytes() == b"no tenant"
    with tenant_context(tenants["t01"]):
        assert not storage.exists("logo.png")
    with use_schema("some_schema"), pytest.raises(NoTenantActive):
        storage.exists("logo.png")


def test_public_prefix_none_refuses_without_a_tenant(tmp_path: Path) -> None:
    storage = TenantFileSystemStorage(location=tmp_path, public_prefix=None)
    with pytest.raises(NoTenantActive):
        storage.save("a.txt", ContentFile(b"x"))
    with use_master_db(), pytest.raises(NoTenantActive):
        storage.url("a.txt")
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize("prefix", ["t01", "shared", "a/b", "..", ""])
def test_public_prefix_that_could_clash_is_refused(tmp_path: Path, prefix: str) -> None:
    with pytest.raises(ImproperlyConfigured):
        TenantFileSystemStorage(location=tmp_path, public_prefix=prefix)


def test_custom_public_prefix(tmp_path: Path) -> None:
    storage = TenantFileSystemStorage(location=tmp_path, public_prefix="_shared")
    storage.save("a.txt", ContentFile(b"x"))
    assert (tmp_path / "_shared/a.txt").exists()


def test_default_storage_from_settings(tmp_path: Path, tenants: dict[str, Any]) -> None:
    """``STORAGES["default"]`` with OPTIONS builds one instance that serves every tenant."""
    options = {"location": str(tmp_path), "base_url": "/m/", "public_prefix": "public"}
    storages = {**settings.STORAGES, "default": {"BACKEND": BACKEND, "OPTIONS": options}}
    with override_settings(STORAGES=storages):
        for tid in ("t03", "t04"):
            with tenant_context(tenants[tid]):
                default_storage.save("f.txt", ContentFile(tid.encode()))
                assert default_storage.url("f.txt") == f"/m/{tid}/f.txt"
        # default_storage is a DefaultStorage (a LazyObject) that django-stubs types as Storage.
        assert isinstance(cast(DefaultStorage, default_storage)._wrapped, TenantFileSystemStorage)
    assert (tmp_path / "t03/f.txt").read_bytes() == b"t03"
    assert (tmp_path / "t04/f.txt").read_bytes() == b"t04"


def test_mixin_on_another_storage(tenants: dict[str, Any]) -> None:
    """The mixin alone isolates a non-file-system storage (as for ``S3Storage``)."""
    storage = MemoryTenantStorage(base_url="https://cdn.example/")
    for tid in ("t05", "t06"):
        with tenant_context(tenants[tid]):
            assert storage.save("img/a.png", ContentFile(tid.encode())) == "img/a.png"
    with storage._running_backend():  # as the storage underneath sees names: prefixed
        assert storage.exists("t05/img/a.png") and storage.exists("t06/img/a.png")
        assert not storage.exists("img/a.png")
    with tenant_context(tenants["t05"]):
        assert read(storage, "img/a.png") == b"t05"
        assert storage.url("img/a.png") == "https://cdn.example/t05/img/a.png"
        assert storage.listdir("img") == ([], ["a.png"])
        with pytest.raises(SuspiciousFileOperation):
            storage.open("../t06/img/a.png")
    with tenant_context(tenants["t07"]):
        assert not storage.exists("img/a.png")


def test_saved_name_outside_the_prefix_is_refused(tenants: dict[str, Any]) -> None:
    class Elsewhere(InMemoryStorage):
        def _save(self, name: str, content: Any) -> str:
            super()._save(name, content)  # type: ignore[misc]  # not in django-stubs' Storage
            return "t02/" + name.partition("/")[2]

    class Storage(TenantPrefixMixin, Elsewhere):
        pass

    with tenant_context(tenants["t01"]), pytest.raises(SuspiciousFileOperation):
        Storage().save("a.txt", ContentFile(b"x"))


def test_concurrent_uploads_from_threads(
    storage: TenantFileSystemStorage, tmp_path: Path, tenants: dict[str, Any]
) -> None:
    """20 threads over 5 tenants save the same name at once; each file lands in its tenant."""
    tids = [f"t{10 + i % 5:02d}" for i in range(20)]
    barrier = threading.Barrier(len(tids))
    results: dict[int, tuple[str, str, bytes]] = {}
    errors: list[BaseException] = []

    def upload(i: int, tid: str) -> None:
        try:
            with tenant_context(tenants[tid]):
                barrier.wait(timeout=30)  # every thread is in its own tenant before any saves
                content = f"{tid}:{i}".encode()
                name = storage.save("upload.txt", ContentFile(content))
                barrier.wait(timeout=30)
                results[i] = (tid, name, read(storage, name))
        except BaseException as err:
            errors.append(err)
            barrier.abort()

    threads = [threading.Thread(target=upload, args=(i, tid)) for i, tid in enumerate(tids)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert not errors, errors
    assert len(results) == 20
    for i, (tid, name, content) in results.items():
        assert content == f"{tid}:{i}".encode()
        assert (tmp_path / tid / name).read_bytes() == content
    for tid in set(tids):
        assert len(list((tmp_path / tid).iterdir())) == tids.count(tid)


@pytest.mark.asyncio
async def test_concurrent_uploads_from_tasks(
    storage: TenantFileSystemStorage, tmp_path: Path, tenants: dict[str, Any]
) -> None:
    """20 asyncio tasks over 4 tenants, each storage call in a thread via sync_to_async."""
    save = sync_to_async(storage.save, thread_sensitive=False)
    exists = sync_to_async(storage.exists, thread_sensitive=False)
    read_back = sync_to_async(read, thread_sensitive=False)

    async def upload(i: int, tid: str) -> tuple[str, str, bytes]:
        async with tenant_context(tenants[tid]):
            name = await save("same/name.bin", ContentFile(f"{tid}:{i}".encode()))
            await asyncio.sleep(0)
            assert await exists(name)
            return tid, name, await read_back(storage, name)

    tids = [f"t{15 + i % 4:02d}" for i in range(20)]
    results = await asyncio.gather(*(upload(i, tid) for i, tid in enumerate(tids)))
    for i, (tid, name, content) in enumerate(results):
        assert content == f"{tid}:{i}".encode()
        assert (tmp_path / tid / name).read_bytes() == content
    for tid in set(tids):
        assert len(list((tmp_path / tid / "same").iterdir())) == tids.count(tid)


def test_file_field_round_trip(storage: TenantFileSystemStorage, tenants: dict[str, Any]) -> None:
    """Through a FileField (unbound, no model or migration): the stored name has no prefix."""
    field = models.FileField(upload_to="docs", storage=storage, max_length=100)
    field.set_attributes_from_name("document")
    instance = SimpleNamespace(document=None)  # a stand-in for a model instance, not a Model
    with tenant_context(tenants["t08"]):
        fieldfile = FieldFile(instance, field, None)  # type: ignore[arg-type]  # stand-in
        fieldfile.save("contract.pdf", ContentFile(b"t08 contract"), save=False)
        assert fieldfile.name == instance.document == "docs/contract.pdf"
        assert fieldfile.url == "/media/t08/docs/contract.pdf"
        assert read(storage, fieldfile.name) == b"t08 contract"
    with tenant_context(tenants["t09"]):
        assert not storage.exists("docs/contract.pdf")
        with pytest.raises(FileNotFoundError):
            FieldFile(instance, field, "docs/contract.pdf").open()  # type: ignore[arg-type]  # stand-in


def test_demo_model_file_field(
    storage: TenantFileSystemStorage, tenants: dict[str, Any], monkeypatch: pytest.MonkeyPatch
) -> None:
    """A demo model's FileField with this storage, if the demo project has one."""
    fields = [
        field
        for app in ("customers", "notes")
        for model in apps.get_app_config(app).get_models()
        for field in model._meta.get_fields()
        if isinstance(field, models.FileField)
    ]
    if not fields:
        pytest.skip("no model of the demo project has a FileField (none is added for this test)")
    field = fields[0]
    monkeypatch.setattr(field, "storage", storage)
    instance = field.model()
    with tenant_context(tenants["t08"]):
        fieldfile = field.attr_class(instance, field, None)
        fieldfile.save("demo.txt", ContentFile(b"t08"), save=False)
        assert fieldfile.name is not None
        assert not fieldfile.name.startswith("t08/")
        assert read(storage, fieldfile.name) == b"t08"
    with tenant_context(tenants["t09"]):
        assert not storage.exists(fieldfile.name)
