from django.urls import path

from . import views, views_bank, views_collections

urlpatterns = [
    path("payments/", views.payment_list, name="payment-list"),
    path("payments/new/", views.payment_create, name="payment-create"),
    path("payments/new/allocation/", views.payment_allocation_preview, name="payment-allocation-preview"),
    path("payments/<int:pk>/", views.payment_detail, name="payment-detail"),
    path("payments/<int:pk>/allocate/", views.payment_allocate, name="payment-allocate"),
    path("payments/<int:pk>/refund/", views.payment_refund, name="payment-refund"),
    path("payments/<int:pk>/reverse/", views.payment_reverse, name="payment-reverse"),
    path("customers/<int:pk>/statement/", views.customer_statement, name="customer-statement"),
    path("bank/", views_bank.bank_statement_list, name="bank-statement-list"),
    path("bank/upload/", views_bank.bank_statement_upload, name="bank-statement-upload"),
    path("bank/statements/<int:pk>/", views_bank.bank_statement_detail, name="bank-statement-detail"),
    path("bank/queue/", views_bank.bank_queue, name="bank-queue"),
    path("bank/lines/<int:pk>/", views_bank.bank_line_detail, name="bank-line-detail"),
    path("bank/lines/<int:pk>/match/", views_bank.bank_line_match_suggestion, name="bank-line-match"),
    path("bank/accounts/", views_bank.bank_account_list, name="bank-account-list"),
    path("bank/accounts/new/", views_bank.bank_account_create, name="bank-account-create"),
    path("bank/accounts/<int:pk>/", views_bank.bank_account_edit, name="bank-account-edit"),
    path("collections/", views_collections.collections, name="collections"),
    path("invoices/<int:pk>/dispute/", views_collections.invoice_dispute, name="invoice-dispute"),
    path("penalties/<int:pk>/waive/", views_collections.penalty_waive_view, name="penalty-waive"),
    path("penalty-runs/", views_collections.penalty_run_list, name="penalty-run-list"),
    path("penalty-runs/start/", views_collections.penalty_run_start, name="penalty-run-start"),
    path("penalty-runs/<int:pk>/", views_collections.penalty_run_detail, name="penalty-run-detail"),
]
