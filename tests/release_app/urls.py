"""The demo's URLs plus views whose responses take time to send."""

import asyncio
from collections.abc import AsyncIterator, Iterator

from django.http import HttpRequest, StreamingHttpResponse
from django.urls import include, path

from demo.notes.models import Marker


async def astream(request: HttpRequest) -> StreamingHttpResponse:
    marker = await Marker.objects.aget()  # the request holds a pooled connection from here on

    async def chunks() -> AsyncIterator[bytes]:
        for i in range(200):
            yield f"{marker.tenant_id} {i}\n".encode() * 200
            await asyncio.sleep(0.01)

    return StreamingHttpResponse(chunks())


def sync_stream(request: HttpRequest) -> StreamingHttpResponse:
    marker = Marker.objects.get()

    def chunks() -> Iterator[bytes]:
        for i in range(200):
            yield f"{marker.tenant_id} {i}\n".encode() * 200

    return StreamingHttpResponse(chunks())


urlpatterns = [
    path("astream/", astream),
    path("sync-stream/", sync_stream),
    path("", include("demo.urls")),
]
