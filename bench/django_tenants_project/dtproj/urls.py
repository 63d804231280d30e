from django.urls import path
from dtnotes.views import item

urlpatterns = [path("item/", item, name="item")]
