"""``hosts.request_host``: Django's ``get_host()`` answer, remembered per accepted header."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from django.core.exceptions import DisallowedHost
from django.http import HttpRequest
from django.test import RequestFactory, override_settings

from omnitenant_async import hosts


@pytest.fixture(autouse=True)
def fresh() -> Iterator[None]:
    hosts.forget()
    yield
    hosts.forget()


def request(**meta: str) -> HttpRequest:
    req = RequestFactory().get("/")
    req.META.pop("HTTP_HOST", None)
    req.META.update(meta)
    return req


class CountingRequest(HttpRequest):
    """A request class of a project's own that overrides ``get_host()``."""

    def get_host(self) -> str:
        return "own.example.com"


def test_an_accepted_host_is_validated_once(monkeypatch: pytest.MonkeyPatch) -> None:
    calls = []
    stock = HttpRequest.get_host

    def counting(self: HttpRequest) -> str:
        calls.append(self)
        return stock(self)

    monkeypatch.setattr(hosts, "_stock_get_host", counting)
    monkeypatch.setattr(HttpRequest, "get_host", counting)
    with override_settings(ALLOWED_HOSTS=[".example.com"]):
        for _ in range(3):
            assert hosts.request_host(request(HTTP_HOST="a.example.com:8000")) == (
                "a.example.com:8000"
            )
        assert len(calls) == 1
        assert hosts.request_host(request(HTTP_HOST="b.example.com")) == "b.example.com"
        assert len(calls) == 2


def test_a_refused_host_is_refused_every_time() -> None:
    with override_settings(ALLOWED_HOSTS=[".example.com"]):
        for _ in range(2):
            with pytest.raises(DisallowedHost, match="evil.test"):
                hosts.request_host(request(HTTP_HOST="evil.test"))
        assert "evil.test" not in hosts._accepted


def test_changing_allowed_hosts_validates_again() -> None:
    with override_settings(ALLOWED_HOSTS=[".example.com"]):
        assert hosts.request_host(request(HTTP_HOST="a.example.com")) == "a.example.com"
    with override_settings(ALLOWED_HOSTS=["other.test"]):
        with pytest.raises(DisallowedHost):
            hosts.request_host(request(HTTP_HOST="a.example.com"))


def test_x_forwarded_host_is_read_only_when_django_reads_it() -> None:
    meta = {"HTTP_HOST": "proxy.example.com", "HTTP_X_FORWARDED_HOST": "a.example.com"}
    with override_settings(ALLOWED_HOSTS=[".example.com"]):
        assert hosts.request_host(request(**meta)) == "proxy.example.com"
        assert hosts.request_host(request(**meta)) == "proxy.example.com"
        with override_settings(USE_X_FORWARDED_HOST=True):
            assert hosts.request_host(request(**meta)) == "a.example.com"
            assert hosts.request_host(request(**meta)) == "a.example.com"
        assert hosts.request_host(request(**meta)) == "proxy.example.com"


def test_without_a_host_header_django_answers_from_server_name() -> None:
    with override_settings(ALLOWED_HOSTS=["testserver"]):
        assert hosts.request_host(request()) == "testserver"
        assert hosts._accepted == set()


def test_a_request_class_overriding_get_host_is_asked_itself() -> None:
    req = CountingRequest()
    req.META["HTTP_HOST"] = "a.example.com"
    assert hosts.request_host(req) == "own.example.com"


def test_the_memory_is_bounded(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(hosts, "MAX_REMEMBERED", 4)
    with override_settings(ALLOWED_HOSTS=["*"]):
        for i in range(10):
            hosts.request_host(request(HTTP_HOST=f"h{i}.example.com"))
            assert len(hosts._accepted) <= 4
