"""``/item/`` for both variants of ``bench/bench_pooler.py``: one ``Marker.objects.aget()``.

Not ``demo.views.item``, which answers 404 when no tenant is active (plain Django has none).
"""

from django.http import HttpRequest, JsonResponse
from django.urls import path

from demo.notes.models import Marker


async def item(request: HttpRequest) -> JsonResponse:
    marker = await Marker.objects.aget()
    return JsonResponse({"marker": marker.tenant_id})


urlpatterns = [path("item/", item, name="item")]
