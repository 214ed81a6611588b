from django.urls import path

from . import views

urlpatterns = [
    path("orders/", views.order_list, name="order-list"),
    path("orders/new/", views.order_create, name="order-create"),
    path("orders/new/customers/", views.order_entry_customers, name="order-entry-customers"),
    path("orders/new/products/", views.order_entry_products, name="order-entry-products"),
    path("orders/new/line/", views.order_entry_line, name="order-entry-line"),
    path("orders/new/totals/", views.order_entry_totals, name="order-entry-totals"),
    path("orders/import/", views.order_import, name="order-import"),
    path("orders/import/example.csv", views.order_import_example, name="order-import-example"),
    path("orders/import/<int:pk>/", views.order_import_detail, name="order-import-detail"),
    path("orders/import/<int:pk>/run/", views.order_import_run, name="order-import-run"),
    path("orders/<int:pk>/", views.order_detail, name="order-detail"),
    path("orders/<int:pk>/confirm/", views.order_confirm, name="order-confirm"),
    path("orders/<int:pk>/override-confirm/", views.order_override_confirm, name="order-override-confirm"),
    path("orders/<int:pk>/fulfil/", views.order_fulfil, name="order-fulfil"),
    path("orders/<int:pk>/cancel/", views.order_cancel, name="order-cancel"),
    path("products/", views.product_list, name="product-list"),
    path("products/new/", views.product_create, name="product-create"),
    path("products/<int:pk>/edit/", views.product_update, name="product-update"),
]
