"""Per-tenant file storage: ``<location>/<tenant_id>/<name>``, chosen per call.

``STORAGES["default"]["BACKEND"] = "omnitenant_async.storage.TenantFileSystemStorage"`` keeps
each tenant's uploads under its own directory (and URL), and ``TenantPrefixMixin`` does the same
for any other ``Storage`` (``class S(TenantPrefixMixin, S3Storage)``). The prefix is read from
the tenant ContextVar on every call, so one instance serves all tenants at once. Names given to
and returned by the storage are tenant-relative: a ``FileField`` stores ``docs/a.pdf``, never
``t01/docs/a.pdf``, and a name that could leave the tenant's prefix is refused.
"""

from __future__ import annotations

import contextvars
import posixpath
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import datetime
from typing import Any

from django.core.exceptions import ImproperlyConfigured, SuspiciousFileOperation
from django.core.files.base import File
from django.core.files.storage import FileSystemStorage, Storage
from django.core.files.utils import validate_file_name

from .context import get_current_state
from .exceptions import NoTenantActive
from .validators import is_dns_label, is_reserved

__all__ = ["DEFAULT_PUBLIC_PREFIX", "TenantFileSystemStorage", "TenantPrefixMixin"]

DEFAULT_PUBLIC_PREFIX = "public"

# The storage whose backend code is running in this context. Backends call their own public
# methods with names they were already given (FileSystemStorage._open calls self.path()):
# those calls must not be prefixed a second time. A ContextVar, so concurrent threads and
# tasks each have their own.
_in_backend: contextvars.ContextVar[Storage | None] = contextvars.ContextVar(
    "omnitenant_async.storage.in_backend", default=None
)


class TenantPrefixMixin(Storage):
    """Put every name under ``<tenant_id>/`` before the storage below sees it.

    With no tenant active, or in the public state (``use_master_db()``), names go under
    ``public_prefix`` (``"public"``, which no tenant id can be); ``public_prefix=None`` refuses
    them with :class:`NoTenantActive` instead. ``get_available_name`` and ``generate_filename``
    are not overridden: they work on tenant-relative names and ask ``exists()``, which is.
    """

    def __init__(
        self, *args: Any, public_prefix: str | None = DEFAULT_PUBLIC_PREFIX, **kwargs: Any
    ) -> None:
        if public_prefix is not None:
            _validate_public_prefix(public_prefix)
        self.public_prefix = public_prefix
        with self._running_backend():  # InMemoryStorage resolves its root through self.path()
            super().__init__(*args, **kwargs)

    def tenant_prefix(self) -> str:
        """The active tenant's id, or ``public_prefix``; computed on every call."""
        state = get_current_state()
        if state is not None and state.tenant_id is not None:
            prefix = state.tenant_id
        elif state is not None and not state.is_public:
            # use_schema() without a tenant row: a schema name may be any identifier, and
            # falling back to public would hand it public's files.
            raise NoTenantActive(
                f"Tenant storage has no prefix for schema {state.schema_name!r} (no tenant id). "
                "Activate a tenant, or use_master_db() for the public files."
            )
        elif self.public_prefix is None:
            raise NoTenantActive(
                "No tenant is active and this storage has public_prefix=None. Activate a "
                "tenant with `with tenant_context(tenant):`, or set a public_prefix."
            )
        else:
            prefix = self.public_prefix
        validate_file_name(prefix)  # one path segment, whatever built the state
        return prefix

    def tenant_name(self, name: str, *, directory: bool = False) -> str:
        """``<prefix>/<name>``; raise ``SuspiciousFileOperation`` if ``name`` could leave it.

        Django's own check refuses absolute names and every ``..`` segment, so the joined
        name is inside the prefix by construction. ``directory=True`` also accepts ``""``
        (the tenant's root) and a trailing slash, for ``listdir()``.
        """
        prefix = self.tenant_prefix()
        name = str(name).replace("\\", "/")
        if directory and name in ("", "."):
            return prefix
        validate_file_name(name.rstrip("/") if directory else name, allow_relative_path=True)
        return posixpath.normpath(posixpath.join(prefix, name))

    @contextmanager
    def _running_backend(self) -> Iterator[None]:
        token = _in_backend.set(self)
        try:
            yield
        finally:
            _in_backend.reset(token)

    @contextmanager
    def _backend_name(self, name: str, *, directory: bool = False) -> Iterator[str]:
        if _in_backend.get() is self:
            yield name  # the backend calling itself: the name is prefixed already
            return
        full_name = self.tenant_name(name, directory=directory)
        with self._running_backend():
            yield full_name

    # django-stubs declares neither _open nor _save on Storage, hence the ignores below.
    def _open(self, name: str, mode: str = "rb") -> File[Any]:
        with self._backend_name(name) as full_name:
            return super()._open(full_name, mode)  # type: ignore[misc,no-any-return]

    def _save(self, name: str, content: File[Any]) -> str:
        if _in_backend.get() is self:
            return super()._save(name, content)  # type: ignore[misc,no-any-return]
        prefix = self.tenant_prefix()
        with self._backend_name(name) as full_name:
            saved: str = super()._save(full_name, content)  # type: ignore[misc]
        # The backend may have picked another name (a race on the first one); it is still
        # ours only if it is inside the prefix.
        head, sep, relative = saved.replace("\\", "/").partition("/")
        if head != prefix or not sep or not relative:
            raise SuspiciousFileOperation(
                f"The storage saved {saved!r} outside the tenant prefix {prefix!r}/."
            )
        return relative

    def delete(self, name: str) -> None:
        with self._backend_name(name) as full_name:
            super().delete(full_name)

    def exists(self, name: str) -> bool:
        with self._backend_name(name) as full_name:
            return super().exists(full_name)

    def listdir(self, path: str) -> tuple[list[str], list[str]]:
        with self._backend_name(path, directory=True) as full_path:
            return super().listdir(full_path)

    def size(self, name: str) -> int:
        with self._backend_name(name) as full_name:
            return super().size(full_name)

    def url(self, name: str | None, *args: Any, **kwargs: Any) -> str:
        """The URL under the tenant's prefix; other arguments go to the backend (S3: ``expire``)."""
        if name is None:
            raise ValueError("A file without a name has no URL.")
        with self._backend_name(name) as full_name:
            return super().url(full_name, *args, **kwargs)

    def path(self, name: str) -> str:
        with self._backend_name(name) as full_name:
            return super().path(full_name)

    def get_accessed_time(self, name: str) -> datetime:
        with self._backend_name(name) as full_name:
            return super().get_accessed_time(full_name)

    def get_created_time(self, name: str) -> datetime:
        with self._backend_name(name) as full_name:
            return super().get_created_time(full_name)

    def get_modified_time(self, name: str) -> datetime:
        with self._backend_name(name) as full_name:
            return super().get_modified_time(full_name)


def _validate_public_prefix(prefix: str) -> None:
    """A single path segment that no tenant id can ever be (else two could share files)."""
    try:
        validate_file_name(prefix)
    except SuspiciousFileOperation:
        raise ImproperlyConfigured(
            f"public_prefix {prefix!r} must be a single path segment, such as 'public'."
        ) from None
    if is_dns_label(prefix) and not is_reserved(prefix):
        raise ImproperlyConfigured(
            f"public_prefix {prefix!r} could be a tenant's id, whose files would then be the "
            "public ones. Use 'public' (reserved) or a name tenant ids cannot take ('_shared')."
        )


class TenantFileSystemStorage(TenantPrefixMixin, FileSystemStorage):
    """Files under ``MEDIA_ROOT/<tenant_id>/``, served at ``MEDIA_URL/<tenant_id>/``.

    ``path()`` is still Django's ``safe_join(location, "<tenant_id>/<name>")``.
    """
