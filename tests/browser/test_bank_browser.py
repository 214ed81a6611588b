"""Bank statements from the browser: a CAMT.053 import where one line posts by itself and one waits
in the queue until a person matches it in one click; a large statement matched by a real worker
behind a progress bar; the account pages."""

import time
from datetime import date
from pathlib import Path

import pytest
from playwright.sync_api import expect

from invoicing.models import Invoice, InvoiceStatus
from payments.models import BankAccount, BankLine, BankLineStatus, BankStatement, Payment
from tests.factories import CustomerFactory

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]
DATA = Path(__file__).parent.parent / "data"
ACCOUNT_IBAN = "FR7630006000011234567890189"


def test_camt_import_posts_one_line_and_staff_match_the_queued_one(
    page, login, screenshot, make_issued_invoice, no_worker
):
    # no_worker: the import also queues the matching task; here the request matches the small file.
    BankAccount.objects.create(name="Main account", iban=ACCOUNT_IBAN, currency="EUR")
    dupont = CustomerFactory(name="Dupont SA", iban="DE89370400440532013000")
    martin = CustomerFactory(name="Martin et Fils SARL", iban="FR1420041010050500013M02606")
    invoices = [make_issued_invoice(c, issue_date=date(2026, 11, 2)) for c in (dupont, dupont, martin)]

    login()
    page.get_by_role("link", name="Bank", exact=True).click()
    expect(page.get_by_role("heading", level=1)).to_have_text("Bank statements")
    screenshot("bank-statements-empty")
    page.get_by_role("link", name="+ Import statement").first.click()
    page.get_by_label("Account").select_option(label="Main account")
    page.get_by_label("File").set_input_files(str(DATA / "camt053_sample.xml"))
    screenshot("bank-upload")
    page.get_by_role("button", name="Import and match").click()

    expect(page.get_by_role("heading", level=1)).to_contain_text("Statement camt053_sample.xml")
    expect(page.get_by_test_id("message-success")).to_contain_text("2 posted, 2 waiting in the queue, 1 ignored")
    expect(page.get_by_test_id("count-matched")).to_have_text("2")
    expect(page.get_by_test_id("line-1")).to_contain_text("INV-2026-000001")
    screenshot("bank-statement")
    assert Invoice.objects.get(pk=invoices[0].pk).status == InvoiceStatus.PAID

    page.get_by_role("link", name="Work the queue (2)").click()
    expect(page.get_by_role("heading", level=1)).to_have_text("Bank lines to match")
    suggested = BankLine.objects.get(status=BankLineStatus.SUGGESTED)
    row = page.get_by_test_id(f"queue-line-{suggested.pk}")
    expect(row.get_by_test_id("reason")).to_contain_text("matches open invoice INV-2026-000003 of Martin et Fils SARL")
    screenshot("bank-queue")

    row.get_by_role("button", name="Match").click()
    expect(page.get_by_test_id("message-success")).to_contain_text("from Martin et Fils SARL")
    expect(page.get_by_test_id(f"queue-line-{suggested.pk}")).to_have_count(0)
    expect(page.get_by_test_id("queue").locator("tbody tr")).to_have_count(1)
    screenshot("bank-queue-after-match")
    suggested.refresh_from_db()
    assert suggested.status == BankLineStatus.MATCHED
    assert Invoice.objects.get(pk=invoices[2].pk).status == InvoiceStatus.PAID
    assert Payment.objects.count() == 3

    # The unknown payer: open it, ignore without a reason (inline error), then with one.
    page.get_by_role("link", name="Choose…").click()
    expect(page.get_by_role("heading", level=1)).to_contain_text("from Unknown Trading GmbH")
    page.get_by_role("button", name="Ignore this line").click()
    expect(page.locator("#id_reason.is-invalid")).to_be_visible()
    screenshot("bank-line")
    page.get_by_label("Reason").fill("Not a customer: refund of a supplier deposit")
    page.get_by_role("button", name="Ignore this line").click()
    expect(page.get_by_test_id("empty-state")).to_be_visible()
    screenshot("bank-queue-empty")


def _camt(n: int) -> bytes:
    entries = "".join(
        f'<Ntry><Amt Ccy="EUR">{10 + i}.00</Amt><CdtDbtInd>CRDT</CdtDbtInd><BookgDt><Dt>2026-11-20</Dt></BookgDt>'
        f"<AcctSvcrRef>L{i}</AcctSvcrRef><NtryDtls><TxDtls><RmtInf><Ustrd>gift {i}</Ustrd></RmtInf>"
        "</TxDtls></NtryDtls></Ntry>"
        for i in range(n)
    )
    return (
        '<?xml version="1.0"?><Document xmlns="urn:iso:std:iso:20022:tech:xsd:camt.053.001.02"><BkToCstmrStmt>'
        f"<Stmt><Id>BIG</Id><Acct><Id><IBAN>{ACCOUNT_IBAN}</IBAN></Id></Acct>{entries}</Stmt>"
        "</BkToCstmrStmt></Document>"
    ).encode()


@pytest.mark.worker
def test_large_statement_is_matched_by_a_worker_behind_a_progress_bar(
    page, login, screenshot, settings, celery_worker_process, tmp_path
):
    settings.OTC_BANK_BATCH_SIZE = 60  # ten steps the page can show
    BankAccount.objects.create(name="Main account", iban=ACCOUNT_IBAN, currency="EUR")
    big = tmp_path / "november.xml"
    big.write_bytes(_camt(600))

    login()
    page.goto("/bank/upload/")
    page.get_by_label("Account").select_option(label="Main account")
    page.get_by_label("File").set_input_files(str(big))
    page.get_by_role("button", name="Import and match").click()
    expect(page.get_by_test_id("message-success")).to_contain_text("matching runs in the background")
    bar = page.get_by_role("progressbar")
    seen = []
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        value = int(bar.get_attribute("aria-valuenow"))
        if not seen or seen[-1] != value:
            seen.append(value)
            if len(seen) == 1:
                screenshot("bank-statement-progress")
        if value == 100:
            break
        time.sleep(0.2)
    expect(page.get_by_test_id("statement-status")).to_have_text("Done")
    expect(page.get_by_test_id("count-unmatched")).to_have_text("600")
    assert seen[-1] == 100 and seen == sorted(seen)
    statement = BankStatement.objects.get()
    assert (statement.status, statement.processed_lines) == ("done", 600)


def test_account_pages(page, login, screenshot):
    login()
    page.goto("/bank/accounts/")
    expect(page.get_by_test_id("empty-state")).to_be_visible()
    page.get_by_role("link", name="+ New account").first.click()
    page.get_by_label("Name", exact=True).fill("Sparkasse")
    page.get_by_label("IBAN", exact=True).fill("DE89 3704")
    page.get_by_label("Currency", exact=True).fill("EUR")
    page.get_by_label("Date column").fill("Buchungstag")
    page.get_by_role("button", name="Save account").click()
    expect(page.locator("#id_iban.is-invalid")).to_be_visible()
    expect(page.locator("#id_map_amount.is-invalid")).to_be_visible()
    screenshot("bank-account-form-errors")
    page.get_by_label("IBAN", exact=True).fill("DE89 3704 0044 0532 0130 00")
    page.get_by_label("Amount column").fill("Betrag")
    page.get_by_label("Delimiter").select_option(";")
    page.get_by_role("button", name="Save account").click()
    expect(page.get_by_test_id("message-success")).to_contain_text("Bank account Sparkasse saved")
    screenshot("bank-accounts")
    account = BankAccount.objects.get()
    assert account.csv_mapping["date"] == "Buchungstag" and account.csv_mapping["delimiter"] == ";"
