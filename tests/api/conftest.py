import pytest
from rest_framework.test import APIClient

from tests.factories import CustomerFactory, PaymentTermsFactory


@pytest.fixture
def anon():
    return APIClient()


@pytest.fixture
def api(user):
    """A client signed in as the finance user (session-less: forced authentication)."""
    client = APIClient()
    client.force_authenticate(user=user)
    return client


@pytest.fixture
def terms(db):
    return PaymentTermsFactory(name="Net 30", due_days=30)


@pytest.fixture
def eur_customer(db, terms):
    return CustomerFactory(name="Dupont SA", currency="EUR", payment_terms=terms)
