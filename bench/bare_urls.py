"""The product's URLs plus the bench-only bare order view (selected by bench.settings only)."""

from django.urls import path

from bench import bare_views
from otc.urls import urlpatterns as product_urlpatterns

urlpatterns = [path("bench/bare-order/", bare_views.order_create), *product_urlpatterns]
