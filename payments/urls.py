from django.urls import path

from . import views, views_collections

urlpatterns = [
    path("payments/", views.payment_list, name="payment-list"),
    path("payments/new/", views.payment_create, name="payment-create"),
    path("payments/new/allocation/", views.payment_allocation_preview, name="payment-allocation-preview"),
    path("payments/<int:pk>/", views.payment_detail, name="payment-detail"),
    path("payments/<int:pk>/allocate/", views.payment_allocate, name="payment-allocate"),
    path("customers/<int:pk>/statement/", views.customer_statement, name="customer-statement"),
    path("collections/", views_collections.collections, name="collections"),
    path("invoices/<int:pk>/dispute/", views_collections.invoice_dispute, name="invoice-dispute"),
]
