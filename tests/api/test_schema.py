"""The OpenAPI schema and its browsable docs, served without any CDN."""

import re
from io import StringIO

import pytest
from django.core.management import call_command

pytestmark = pytest.mark.django_db


def test_schema_generates_without_warnings():
    # --fail-on-warn turns any schema warning (unresolvable field, enum clash, ...) into an error.
    out = StringIO()
    call_command("spectacular", "--validate", "--fail-on-warn", "--format", "openapi-json", stdout=out)
    assert '"/api/v1/orders/{id}/invoice/"' in out.getvalue()


def test_schema_endpoint_lists_every_resource(api):
    response = api.get("/api/schema/", HTTP_ACCEPT="application/vnd.oai.openapi+json")
    assert response.status_code == 200
    paths = response.json()["paths"]
    for path in [
        "/api/v1/tax-rates/",
        "/api/v1/payment-terms/",
        "/api/v1/customers/",
        "/api/v1/products/",
        "/api/v1/orders/",
        "/api/v1/orders/{id}/confirm/",
        "/api/v1/orders/{id}/fulfill/",
        "/api/v1/orders/{id}/cancel/",
        "/api/v1/orders/{id}/invoice/",
        "/api/v1/invoices/",
        "/api/v1/invoices/{id}/issue/",
        "/api/v1/invoices/{id}/pdf/",
        "/api/v1/payments/",
        "/api/v1/kpis/",
        "/api/v1/billing-runs/",
        "/api/v1/billing-runs/{id}/",
        "/api/v1/penalty-runs/",
        "/api/v1/penalty-runs/{id}/",
    ]:
        assert path in paths, path
    pdf = paths["/api/v1/invoices/{id}/pdf/"]["get"]["responses"]["200"]["content"]
    assert "application/pdf" in pdf


def test_docs_page_loads_its_scripts_and_styles_locally(api):
    response = api.get("/api/docs/")
    assert response.status_code == 200
    html = response.content.decode()
    assert "swagger-ui" in html
    assets = re.findall(r"""(?:src|href)\s*=\s*["']([^"']+)["']""", html)
    assert any(a.endswith(".js") for a in assets), assets
    external = [a for a in assets if re.match(r"^(https?:)?//", a)]
    assert external == []
    assert not re.search(r"""(?:src|href)\s*=\s*["'](https?:)?//""", html)
    # ... and the local copies are really served.
    for asset in assets:
        assert api.get(asset).status_code == 200, asset
