"""The REST API root, /api/v1/: each app registers its viewsets here.

Basenames carry an `api-` prefix so the route names never shadow the browser UI's
(`customer-detail`, `order-detail`, ... are the pages)."""

from django.urls import re_path
from rest_framework.routers import DefaultRouter

from billing.api import CustomerViewSet, PaymentTermsViewSet, TaxRateViewSet
from invoicing.api import InvoiceViewSet, OrderViewSet
from invoicing.api_delivery import BillingRunViewSet, PrintBatchViewSet
from kpis.api import FeedbackViewSet, KpiViewSet
from orders.api import ProductViewSet
from payments.api import (
    CustomerStatementView,
    GatewayWebhookView,
    PaymentViewSet,
    PenaltyAssessmentViewSet,
    PenaltyRunViewSet,
)
from payments.api_bank import BankAccountViewSet, BankLineViewSet, BankStatementViewSet

router = DefaultRouter()
router.register("tax-rates", TaxRateViewSet, basename="api-tax-rate")
router.register("payment-terms", PaymentTermsViewSet, basename="api-payment-terms")
router.register("customers", CustomerViewSet, basename="api-customer")
router.register("products", ProductViewSet, basename="api-product")
# The order routes come from invoicing.api: it adds POST /orders/{id}/invoice/ to orders.api's viewset.
router.register("orders", OrderViewSet, basename="api-order")
router.register("invoices", InvoiceViewSet, basename="api-invoice")
router.register("payments", PaymentViewSet, basename="api-payment")
router.register("penalties", PenaltyAssessmentViewSet, basename="api-penalty")
router.register("penalty-runs", PenaltyRunViewSet, basename="api-penalty-run")
router.register("billing-runs", BillingRunViewSet, basename="api-billing-run")
router.register("kpis", KpiViewSet, basename="api-kpi")
router.register("feedback", FeedbackViewSet, basename="api-feedback")
router.register("print-batches", PrintBatchViewSet, basename="api-print-batch")
router.register("bank-accounts", BankAccountViewSet, basename="api-bank-account")
router.register("bank-statements", BankStatementViewSet, basename="api-bank-statement")
router.register("bank-lines", BankLineViewSet, basename="api-bank-line")
urlpatterns = [
    # Before the router: its payments/{pk}/ pattern would take "webhooks" for an id.
    re_path(r"^payments/webhooks/(?P<provider>[^/]{1,60})/$", GatewayWebhookView.as_view(), name="api-webhook"),
    *router.urls,
    # In payments (it shows unapplied credit), beside the customer routes: billing cannot import payments.
    re_path(
        r"^customers/(?P<customer_id>[^/.]+)/statement/$",
        CustomerStatementView.as_view(),
        name="api-customer-statement",
    ),
]
