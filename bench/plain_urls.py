"""The one URL every variant serves: ``/item/`` (one ``Marker.objects.aget()``).

Not ``demo.views.item``, which answers 404 when no tenant is active (plain Django has none).
"""

from django.urls import path

from bench.pooler_urls import item

urlpatterns = [path("item/", item, name="item")]
