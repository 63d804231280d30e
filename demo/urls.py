from django.urls import path

from . import views

urlpatterns = [
    path("", views.index, name="index"),
    path("whoami/", views.whoami, name="whoami"),
    path("whoami-sync/", views.whoami_sync, name="whoami-sync"),
    path("item/", views.item, name="item"),
    path("notes/", views.notes, name="notes"),
]
