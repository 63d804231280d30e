"""Per-host URLconf: ``PUBLIC_URLCONF``, ``TENANT_URLCONF`` and a tenant's ``config["urlconf"]``.

Requests are resolved with the host's URLconf, and ``reverse()`` follows the active tenant,
in a request and in a bare ``tenant_context`` (tasks, commands), nested ones included.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
from django.conf import settings
from django.test import Client, override_settings
from django.urls import NoReverseMatch, get_urlconf, reverse, set_urlconf

from omnitenant_async import tenant_context, use_public_schema
from omnitenant_async.testing import create_test_tenant, drop_test_tenant

from .asgi_client import request

pytestmark = pytest.mark.usefixtures("tenants")

PUBLIC = "tests.urlconfs.public"
SPECIAL = "tests.urlconfs.special"


@pytest.fixture(scope="module")
def special() -> Iterator[Any]:
    tenant = create_test_tenant("urlspecial", ["urlspecial.localhost"], config={"urlconf": SPECIAL})
    yield tenant
    drop_test_tenant(tenant)


def configured(**keys: str) -> Any:
    return override_settings(OMNITENANT_CONFIG={**settings.OMNITENANT_CONFIG, **keys})


def test_the_public_host_is_served_with_public_urlconf() -> None:
    client = Client()
    with configured(PUBLIC_URLCONF=PUBLIC):
        response = client.get("/landing/", headers={"host": "localhost"})
        assert response.status_code == 200
        assert response.content == b"landing /landing/"
        assert client.get("/landing/", headers={"host": "t01.localhost"}).status_code == 404
        assert client.get("/whoami-sync/", headers={"host": "t01.localhost"}).status_code == 200
    # Without the setting the public host has the project's URLconf again.
    assert client.get("/landing/", headers={"host": "localhost"}).status_code == 404


def test_tenant_urlconf_serves_every_tenant() -> None:
    client = Client()
    with configured(TENANT_URLCONF=PUBLIC):
        assert client.get("/landing/", headers={"host": "t02.localhost"}).status_code == 200
        assert client.get("/whoami-sync/", headers={"host": "t02.localhost"}).status_code == 404


@pytest.mark.asyncio
async def test_a_tenant_with_its_own_urlconf(special: Any) -> None:
    """Through Django's ASGI handler: an async view, reverse() on the loop and in a thread."""
    response = await request("/special/", "urlspecial.localhost")
    assert response.status == 200
    assert response.body == b"special /special/ /special/"
    assert (await request("/special/", "t03.localhost")).status == 404
    whoami = await request("/whoami/", "urlspecial.localhost")
    assert whoami.status == 404  # the project's URLs are not this tenant's


def test_reverse_follows_the_tenant_context(special: Any, tenants: dict[str, Any]) -> None:
    with pytest.raises(NoReverseMatch):
        reverse("special")
    with tenant_context(special):
        assert reverse("special") == "/special/"
        with tenant_context(tenants["t01"]):  # no URLconf of its own: the project's
            assert get_urlconf() is None
            with pytest.raises(NoReverseMatch):
                reverse("special")
        assert reverse("special") == "/special/"
    assert get_urlconf() is None
    with configured(PUBLIC_URLCONF=PUBLIC), use_public_schema():
        assert reverse("landing") == "/landing/"


def test_nothing_configured_leaves_the_urlconf_alone(tenants: dict[str, Any]) -> None:
    set_urlconf(PUBLIC)  # a project that picks its own URLconf
    try:
        with tenant_context(tenants["t01"]):
            assert get_urlconf() == PUBLIC
        assert get_urlconf() == PUBLIC
    finally:
        set_urlconf(None)


def test_an_unimportable_urlconf_is_reported_by_check_e060() -> None:
    from omnitenant_async import checks

    with configured(PUBLIC_URLCONF="tests.urlconfs.missing", TENANT_URLCONF=SPECIAL):
        messages = checks.check_urlconfs()
    assert [m.id for m in messages] == ["omnitenant.E060"]
    assert "PUBLIC_URLCONF" in messages[0].msg
    with configured(PUBLIC_URLCONF=PUBLIC, TENANT_URLCONF=SPECIAL):
        assert checks.check_urlconfs() == []
