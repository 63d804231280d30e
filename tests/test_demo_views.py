"""The demo's views answer hostile and bad input with 4xx and escape what they render."""

from __future__ import annotations

import json
import re
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
    response = client.get("/")
    page = response.content.decode()
    for text in HOSTILE:
        assert text not in page
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in page
    assert "&quot;&gt;&lt;img src=x onerror=alert(1)&gt;" in page
    assert "<img" not in page and "<iframe" not in page
    # The page's one script is its own, allowed by the CSP nonce; injected ones could not run.
    [nonce] = re.findall(r'<script nonce="([^"]+)">', page)
    assert page.count("<script") == 1
    assert f"script-src 'nonce-{nonce}'" in response.headers["Content-Security-Policy"]
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


# --- The HTML pages: landing (create a tenant), dashboard (post without JavaScript) ----------


def csrf_client(host: str) -> tuple[Client, str]:
    """A client that enforces CSRF as a browser meets it, and the token of the page's form."""
    browser = Client(HTTP_HOST=host, enforce_csrf_checks=True, raise_request_exception=False)
    page = browser.get("/").content.decode()
    [token] = re.findall(r'name="csrfmiddlewaretoken" value="([^"]+)"', page)
    return browser, token


def tenant_exists(tenant_id: str) -> bool:
    from omnitenant_async import use_master_db
    from omnitenant_async.utils import get_tenant_model

    with use_master_db():
        return bool(get_tenant_model().objects.filter(tenant_id=tenant_id).exists())


def test_landing_page_lists_tenants_and_links_to_their_dashboards(demo_tenant: Any) -> None:
    response = Client(HTTP_HOST="localhost:8123").get("/")
    page = response.content.decode()
    assert response.status_code == 200
    assert f'href="http://{HOST}:8123/"' in page and "Create a tenant" in page
    assert 'name="csrfmiddlewaretoken"' in page
    assert "default-src 'none'" in response.headers["Content-Security-Policy"]


def test_landing_page_creates_a_tenant_through_acreate(demo_tenant: Any) -> None:
    from omnitenant_async.utils import get_domain_model, get_tenant_model

    browser, token = csrf_client("localhost")
    # Without the CSRF token: refused, nothing created.
    refused = browser.post("/", {"tenant_id": "ops-new", "isolation": "schema"})
    assert refused.status_code == 403 and not tenant_exists("ops-new")
    body = {"csrfmiddlewaretoken": token, "tenant_id": "ops-new", "name": "<i>New</i>",
            "isolation": "schema"}  # fmt: skip
    response = browser.post("/", body)
    try:
        assert response.status_code == 303, response.content
        assert response["Location"] == "/?created=ops-new"
        tenant = get_tenant_model().objects.get(tenant_id="ops-new")
        assert tenant.name == "<i>New</i>"
        domain = get_domain_model().objects.get(tenant=tenant)
        assert (domain.domain, domain.is_primary) == ("ops-new.localhost", True)
        page = browser.get(response["Location"]).content.decode()
        [message] = re.findall(r'<ul class="messages"><li>(.*?)</li>', page)
        how = r"Tenant &#x27;ops-new&#x27; provisioned in \d+ ms: (migrated|cloned)( \(.*\))?\."
        assert re.fullmatch(how, message), message
        assert "&lt;i&gt;New&lt;/i&gt;" in page and "<i>New" not in page
        assert 'class="created"' in page
        # The new tenant answers on its host at once, from its own schema.
        new = Client(HTTP_HOST="ops-new.localhost")
        assert new.get("/whoami/").json() == {"tenant": "ops-new", "context": "ops-new",
                                              "marker": "ops-new", "notes": 1}  # fmt: skip
        dashboard = new.get("/").content.decode()
        assert "Welcome to &lt;i&gt;New&lt;/i&gt;" in dashboard
        assert '<dd id="who-schema"><code>ops-new</code></dd>' in dashboard
        # The same id again is a form error, not a 500.
        again = browser.post("/", body)
        assert again.status_code == 400
        assert "A tenant with id &#x27;ops-new&#x27; already exists." in again.content.decode()
    finally:
        for row in get_tenant_model().objects.filter(tenant_id="ops-new"):
            drop_test_tenant(row)


@pytest.mark.parametrize(
    ("tenant_id", "error"),
    [
        ("", "This field is required."),
        ("Bad_Name", "is not a valid DNS label"),
        ("-edge", "is not a valid DNS label"),
        ("public", "is reserved"),
        ("pg_x", "is reserved"),
        ("a" * 64, "the limit is 63"),
        ("<script>x</script>", "is not a valid DNS label"),
        ("ops-demo", "already exists"),
    ],
)
def test_landing_page_refuses_bad_tenant_ids(demo_tenant: Any, tenant_id: str, error: str) -> None:
    browser, token = csrf_client("localhost")
    body = {"csrfmiddlewaretoken": token, "tenant_id": tenant_id, "isolation": "schema"}
    response = browser.post("/", body)
    page = response.content.decode()
    assert response.status_code == 400
    assert re.search(r'<ul class="errorlist[^"]*"[^>]*><li>[^<]*' + re.escape(error), page), page
    assert "<script>x" not in page
    if tenant_id not in ("ops-demo", ""):
        assert not tenant_exists(tenant_id[:63])


def test_landing_page_refuses_a_bad_isolation(demo_tenant: Any) -> None:
    browser, token = csrf_client("localhost")
    body = {"csrfmiddlewaretoken": token, "tenant_id": "ops-iso", "isolation": "nope"}
    response = browser.post("/", body)
    assert response.status_code == 400 and not tenant_exists("ops-iso")


def test_dashboard_posts_a_note_without_javascript(client: Client, demo_tenant: Any) -> None:
    from demo.notes.models import Note

    browser, token = csrf_client(HOST)
    assert browser.post("/", {"text": "no token"}).status_code == 403
    response = browser.post("/", {"csrfmiddlewaretoken": token, "text": "  <b>plain</b>  "})
    assert response.status_code == 303 and response["Location"] == "/"
    with tenant_context(demo_tenant):
        assert list(Note.objects.values_list("text", flat=True)) == ["<b>plain</b>"]
    for bad in ("", "   ", "x" * 501):
        refused = browser.post("/", {"csrfmiddlewaretoken": token, "text": bad})
        assert refused.status_code == 400 and 'class="errorlist' in refused.content.decode()
    page = browser.get("/").content.decode()
    assert '<span class="text">&lt;b&gt;plain&lt;/b&gt;</span>' in page


def test_dashboard_says_who_answers(client: Client) -> None:
    page = client.get("/").content.decode()
    assert '<dd id="who-tenant">ops-demo</dd>' in page
    assert '<dd id="who-schema"><code>ops-demo</code></dd>' in page
    assert re.search(r'<dd id="who-pid">\d+</dd>', page)
    assert re.search(r'<dd id="who-server">[\d.:]+ as \w+</dd>', page)
    feed = client.get("/feed/")
    assert feed.status_code == 200 and "/ws/feed/" in feed.content.decode()
    assert "ws://ops-demo.localhost" in feed.headers["Content-Security-Policy"]


def test_admin_static_files_are_served(client: Client) -> None:
    """uvicorn alone serves the admin's CSS (else the admin renders unstyled); nothing else."""
    css = client.get("/static/admin/css/base.css")
    assert css.status_code == 200 and css["Content-Type"].startswith("text/css")
    assert 'href="/static/admin/css/base.css"' in client.get("/admin/login/").content.decode()
    for path in ("admin/css/nope.css", "admin/../../settings.py", "notes/models.py", "admin/"):
        assert client.get(f"/static/{path}").status_code == 404, path
    assert client.post("/static/admin/css/base.css").status_code == 405
