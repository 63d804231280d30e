from django.http import HttpRequest, JsonResponse

from .models import Marker


async def item(request: HttpRequest) -> JsonResponse:
    """Same view as demo.views.item: one async ORM read."""
    marker = await Marker.objects.aget()
    return JsonResponse({"marker": marker.tenant_id})
