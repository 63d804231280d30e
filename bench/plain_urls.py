"""The one URL every variant serves: ``/item/`` (one ``Marker.objects.aget()``)."""

from django.urls import path

from demo.views import item

urlpatterns = [path("item/", item, name="item")]
