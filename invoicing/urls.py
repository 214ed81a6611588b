from django.urls import path

from . import views

urlpatterns = [
    path("invoices/", views.invoice_list, name="invoice-list"),
    path("invoices/<int:pk>/", views.invoice_detail, name="invoice-detail"),
    path("invoices/<int:pk>/issue/", views.invoice_issue, name="invoice-issue"),
    path("invoices/<int:pk>/void/", views.invoice_void, name="invoice-void"),
    path("invoices/<int:pk>/credit/", views.invoice_credit, name="invoice-credit"),
    path("invoices/<int:pk>/apply-credit/", views.credit_note_apply, name="credit-note-apply"),
    path("invoices/<int:pk>/pdf/", views.invoice_pdf, name="invoice-pdf"),
    path("invoices/<int:pk>/resend/", views.invoice_resend, name="invoice-resend"),
    path("billing-runs/", views.billing_run_list, name="billing-run-list"),
    path("billing-runs/start/", views.billing_run_start, name="billing-run-start"),
    path("billing-runs/<int:pk>/", views.billing_run_detail, name="billing-run-detail"),
    path("print-batches/", views.print_batch_list, name="print-batch-list"),
    path("print-batches/<int:pk>/", views.print_batch_detail, name="print-batch-detail"),
    path("print-batches/<int:pk>/close/", views.print_batch_close, name="print-batch-close"),
    path("print-batches/<int:pk>/post/", views.print_batch_post, name="print-batch-post"),
    path("print-batches/<int:pk>/pdf/", views.print_batch_pdf, name="print-batch-pdf"),
    # Lives here, not in orders: invoicing builds on orders, never the other way round.
    path("orders/<int:pk>/invoice/", views.order_invoice, name="order-invoice"),
]
