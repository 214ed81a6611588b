"""Factories for the test suite. Documents (orders, invoices, payments) are made through the
services, so tests exercise the same rules users do."""

from decimal import Decimal

import factory
from django.contrib.auth import get_user_model

from billing.models import Customer, PaymentTerms, TaxRate
from orders.models import Product


class UserFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = get_user_model()
        django_get_or_create = ("username",)
        skip_postgeneration_save = True

    username = factory.Sequence(lambda n: f"clerk{n}")
    email = factory.LazyAttribute(lambda u: f"{u.username}@otc.example")
    is_staff = True
    password = factory.PostGenerationMethodCall("set_password", "pw-Secret-123")

    @factory.post_generation
    def save_password(obj, create, extracted, **kwargs):
        if create:
            obj.save()


class TaxRateFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = TaxRate
        django_get_or_create = ("name",)

    name = "Standard 20%"
    rate = Decimal("20.00")
    category = "standard"


class PaymentTermsFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = PaymentTerms
        django_get_or_create = ("name",)

    name = factory.Sequence(lambda n: f"Net 30 #{n}")
    due_days = 30


class CustomerFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = Customer

    code = factory.Sequence(lambda n: f"C{n:05d}")
    name = factory.Sequence(lambda n: f"Acme {n} SARL")
    legal_name = factory.LazyAttribute(lambda c: c.name)
    email = factory.Sequence(lambda n: f"ap{n}@acme.example")
    currency = "EUR"
    payment_terms = factory.SubFactory(PaymentTermsFactory)
    billing_line1 = "1 Rue du Commerce"
    billing_city = "Lyon"
    billing_postal_code = "69001"
    billing_country = "FR"


class ProductFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = Product

    sku = factory.Sequence(lambda n: f"SKU-{n:04d}")
    name = factory.Sequence(lambda n: f"Widget {n}")
    unit_price = Decimal("10.00")
    tax_rate = factory.SubFactory(TaxRateFactory)
