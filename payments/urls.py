from django.urls import path

from . import views

urlpatterns = [
    path("payments/", views.payment_list, name="payment-list"),
    path("payments/new/", views.payment_create, name="payment-create"),
    path("payments/<int:pk>/", views.payment_detail, name="payment-detail"),
    path("payments/<int:pk>/allocate/", views.payment_allocate, name="payment-allocate"),
    path("payments/<int:pk>/refund/", views.payment_refund, name="payment-refund"),
    path("payments/<int:pk>/reverse/", views.payment_reverse, name="payment-reverse"),
    path("customers/<int:pk>/statement/", views.customer_statement, name="customer-statement"),
]
