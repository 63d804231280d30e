"""A tenant's own URLconf (``config["urlconf"]``) in tests/test_urlconf.py."""

from asgiref.sync import sync_to_async
from django.http import HttpRequest, HttpResponse
from django.urls import path, reverse


async def special(request: HttpRequest) -> HttpResponse:
    # reverse() on the event loop and in a worker thread both use this tenant's URLconf.
    in_thread = await sync_to_async(reverse)("special")
    return HttpResponse(f"special {reverse('special')} {in_thread}")


urlpatterns = [path("special/", special, name="special")]
