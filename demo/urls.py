from django.contrib import admin
from django.urls import path

from . import views

urlpatterns = [
    path("admin/", admin.site.urls),
    path("", views.index, name="index"),
    path("whoami/", views.whoami, name="whoami"),
    path("whoami-sync/", views.whoami_sync, name="whoami-sync"),
    path("item/", views.item, name="item"),
    path("notes/", views.notes, name="notes"),
    path("feed/", views.feed, name="feed"),
    path("static/<path:path>", views.static, name="static"),
]
