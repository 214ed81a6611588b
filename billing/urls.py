from django.urls import path

from . import views

urlpatterns = [
    path("customers/", views.customer_list, name="customer-list"),
    path("customers/new/", views.customer_create, name="customer-create"),
    path("customers/<int:pk>/", views.customer_detail, name="customer-detail"),
    path("customers/<int:pk>/edit/", views.customer_update, name="customer-update"),
    path("customers/<int:pk>/notes/", views.customer_notes, name="customer-notes"),
]
