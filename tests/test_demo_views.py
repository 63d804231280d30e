"""The demo's views answer hostile and bad input with 4xx and escape what they render."""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import pytest
from django.test import Client

from omnitenant_async import tenant_context
from omnitenant_async.testing import create_test_tenant, drop_test_tenant

pytestmark = pytest.mark.usefixtures("django_db")

HOSTILE = [
    "<script>alert(1)</script>",
    '"><img src=x onerror=alert(1)>',
    "</li></ul><iframe src=//evil.example>",
]
HOST = "ops-demo.localhost"


@pytest.fixture(scope="module")
def demo_tenant(django_db: None) -> Iterator[Any]:
    """A tenant made the way `createtenant` makes it: migrated, but no Marker row."""
    tenant = create_test_tenant("ops-demo", [HOST], name="<b>Ops</b> & Demo")
    yield tenant
    drop_test_tenant(tenant)


@pytest.fixture
def client(demo_tenant: Any) -> Iterator[Client]:
    yield Client(HTTP_HOST=HOST, raise_request_exception=False)
    from demo.notes.models import Note

    with tenant_context(demo_tenant):
        Note.objects.all().delete()


def post_json(client: Client, body: Any, **headers: str) -> Any:
    return client.post(
        "/notes/", json.dumps(body), content_type="application/json", headers=headers
    )


def test_hostile_notes_are_escaped_on_the_tenant_page(client: Client) -> None:
    for text in HOSTILE:
        assert post_json(client, {"text": text}).status_code == 201
    page = client.get("/").content.decode()
    for text in HOSTILE:
        assert text not in page
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in page
    assert "&quot;&gt;&lt;img src=x onerror=alert(1)&gt;" in page
    assert "<script" not in page and "<img" not in page and "<iframe" not in page
    assert "<h1>&lt;b&gt;Ops&lt;/b&gt; &amp; Demo</h1>" in page
    # The JSON API returns the text as stored (JSON is not HTML).
    assert {n["text"] for n in client.get("/notes/").json()["notes"]} == set(HOSTILE)


def test_hostile_tenant_names_are_escaped_on_the_public_page(client: Client) -> None:
    page = Client(HTTP_HOST="localhost").get("/").content.decode()
    assert "&lt;b&gt;Ops&lt;/b&gt; &amp; Demo" in page and "<b>Ops" not in page


@pytest.mark.parametrize(
    ("body", "content_type", "status"),
    [
        ("text=hi", "application/x-www-form-urlencoded", 415),
        ('{"text": "hi"}', "text/plain", 415),  # what a cross-site <form enctype> can send
        ('{"text": "hi"}', "multipart/form-data; boundary=x", 415),
        ("{nope", "application/json", 400),
        ("\xff", "application/json", 400),
        ('{"text": 5}', "application/json", 400),
        ('{"text": null}', "application/json", 400),
        ('{"text": ["a"]}', "application/json", 400),
        ('{"text": ""}', "application/json", 400),
        ('["text"]', "application/json", 400),
        ("5", "application/json", 400),
        (json.dumps({"text": "x" * 501}), "application/json", 400),
    ],
)
def test_bad_note_bodies_are_4xx(client: Client, body: str, content_type: str, status: int) -> None:
    response = client.post("/notes/", body, content_type=content_type)
    assert response.status_code == status, response.content
    assert "error" in response.json()
    assert client.get("/notes/").json()["notes"] == []


@pytest.mark.parametrize(
    "headers",
    [
        {"Origin": "http://evil.example"},
        {"Origin": "http://other.localhost"},
        {"Origin": "null"},
        {"Sec-Fetch-Site": "cross-site"},
        {"Sec-Fetch-Site": "same-site"},
    ],
)
def test_cross_site_posts_are_refused(client: Client, headers: dict[str, str]) -> None:
    assert post_json(client, {"text": "csrf"}, **headers).status_code == 403
    assert client.get("/notes/").json()["notes"] == []


def test_same_origin_browser_post_is_accepted(client: Client) -> None:
    """What the feed page's fetch() sends."""
    headers = {"Origin": f"http://{HOST}", "Sec-Fetch-Site": "same-origin"}
    response = post_json(client, {"text": "from the page"}, **headers)
    assert response.status_code == 201 and response.json()["text"] == "from the page"


def test_public_host_endpoints_are_4xx() -> None:
    public = Client(HTTP_HOST="localhost", raise_request_exception=False)
    assert public.get("/notes/").status_code == 404
    assert public.post("/notes/", {"text": "x"}, content_type="application/json").status_code == 404
    assert public.get("/item/").status_code == 404
    assert public.get("/feed/").status_code == 404
    assert public.get("/whoami/").json() == {"tenant": None, "marker": None}
    assert public.get("/whoami-sync/").json() == {"tenant": None, "marker": None}


def test_endpoints_of_a_tenant_made_by_createtenant(client: Client) -> None:
    """No Marker row (only demo_setup seeds one): the views answer, they do not 500."""
    assert client.get("/whoami/").json() == {
        "tenant": "ops-demo",
        "context": "ops-demo",
        "marker": None,
        "notes": 0,
    }
    assert client.get("/whoami-sync/").json()["marker"] is None
    assert client.get("/item/").json() == {"marker": None}
    assert client.get("/feed/").status_code == 200
    assert client.put("/notes/", "{}", content_type="application/json").status_code == 405
    assert client.delete("/notes/").status_code == 405
