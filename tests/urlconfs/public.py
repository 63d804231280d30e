"""The public host's URLconf in tests/test_urlconf.py: a landing page only it serves."""

from django.http import HttpRequest, HttpResponse
from django.urls import path, reverse


def landing(request: HttpRequest) -> HttpResponse:
    return HttpResponse(f"landing {reverse('landing')}")


urlpatterns = [path("landing/", landing, name="landing")]
