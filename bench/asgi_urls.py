"""``bench/bench_asgi.py``'s views: ``/item/`` (async, one ``aget()``), ``/item-sync/`` (sync)."""

from django.http import HttpRequest, JsonResponse
from django.urls import path

from bench.pooler_urls import item
from demo.notes.models import Marker


def item_sync(request: HttpRequest) -> JsonResponse:
    marker = Marker.objects.get()
    return JsonResponse({"marker": marker.tenant_id})


urlpatterns = [path("item/", item), path("item-sync/", item_sync)]
