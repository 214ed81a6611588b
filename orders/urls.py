from django.urls import path

from . import views

urlpatterns = [
    path("orders/", views.order_list, name="order-list"),
    path("orders/new/", views.order_create, name="order-create"),
    path("orders/<int:pk>/", views.order_detail, name="order-detail"),
    path("orders/<int:pk>/confirm/", views.order_confirm, name="order-confirm"),
    path("orders/<int:pk>/fulfil/", views.order_fulfil, name="order-fulfil"),
    path("orders/<int:pk>/cancel/", views.order_cancel, name="order-cancel"),
]
