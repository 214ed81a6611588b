"""The invariant audit: every rule of docs/architecture.md's invariants, checked with SQL over the
whole database. Each check returns the offending rows, named by document number where they have
one (INV-2026-000042), else by model and id."""

from dataclasses import dataclass, field

from django.db import connection

from invoicing.models import Invoice

SALES_KINDS = ("invoice", "penalty")


@dataclass
class Finding:
    check: str
    description: str
    rows: list[str] = field(default_factory=list)


def _rows(sql: str, params=None) -> list[tuple]:
    with connection.cursor() as cursor:
        cursor.execute(sql, params or [])
        return cursor.fetchall()


def _doc(number, pk, model="Invoice") -> str:
    return number or f"{model} #{pk}"


# Each check: (name, description, SQL returning (label, detail) rows)
CHECKS: list[tuple[str, str, str]] = [
    (
        "invoice_net_equals_lines",
        "An invoice's net total equals the sum of its line nets.",
        """
        SELECT i.number, i.id, i.net_total, COALESCE(SUM(l.net_amount), 0)
        FROM invoicing_invoice i LEFT JOIN invoicing_invoiceline l ON l.invoice_id = i.id
        WHERE i.status <> 'void'
        GROUP BY i.id HAVING i.net_total <> COALESCE(SUM(l.net_amount), 0)
        """,
    ),
    (
        "invoice_tax_per_rate",
        "An invoice's tax total equals, per rate, the rounded tax on the sum of line nets; gross = net + tax.",
        """
        SELECT i.number, i.id, i.tax_total, t.tax
        FROM invoicing_invoice i
        JOIN (SELECT invoice_id, SUM(ROUND(net * rate / 100, 2)) AS tax
              FROM (SELECT invoice_id, tax_percent AS rate, SUM(net_amount) AS net
                    FROM invoicing_invoiceline GROUP BY invoice_id, tax_percent) per_rate
              GROUP BY invoice_id) t ON t.invoice_id = i.id
        WHERE i.status <> 'void' AND (i.tax_total <> t.tax OR i.gross_total <> i.net_total + i.tax_total)
        """,
    ),
    (
        "line_rounding",
        "Each line's net is quantity x unit price x (1 - discount), rounded half-up to the cent.",
        """
        SELECT i.number, i.id, l.position, l.net_amount,
               ROUND(l.quantity * l.unit_price * (100 - l.discount_percent) / 100, 2)
        FROM invoicing_invoiceline l JOIN invoicing_invoice i ON i.id = l.invoice_id
        WHERE l.credited_line_id IS NULL
          AND l.net_amount <> ROUND(l.quantity * l.unit_price * (100 - l.discount_percent) / 100, 2)
        """,
    ),
    (
        "credits_within_lines",
        "Credit notes never credit more of a line than it carried.",
        """
        SELECT i.number, i.id, l.position, l.net_amount, SUM(c.net_amount)
        FROM invoicing_invoiceline c
        JOIN invoicing_invoice cn ON cn.id = c.invoice_id AND cn.status <> 'void'
        JOIN invoicing_invoiceline l ON l.id = c.credited_line_id
        JOIN invoicing_invoice i ON i.id = l.invoice_id
        GROUP BY i.id, l.id HAVING SUM(c.net_amount) > l.net_amount OR SUM(c.quantity) > l.quantity
        """,
    ),
    (
        "credits_within_rates",
        "Credit notes never credit more at a tax rate than the invoice's taxable amount at that rate.",
        """
        SELECT i.number, i.id, c.tax_percent, SUM(c.net_amount), COALESCE(t.taxable, 0)
        FROM invoicing_invoiceline c
        JOIN invoicing_invoice cn ON cn.id = c.invoice_id AND cn.kind = 'credit_note'
                                  AND cn.status NOT IN ('draft', 'void')
        JOIN invoicing_invoice i ON i.id = cn.original_id
        LEFT JOIN (SELECT invoice_id, tax_percent, SUM(net_amount) AS taxable FROM invoicing_invoiceline
                   GROUP BY invoice_id, tax_percent) t ON t.invoice_id = i.id AND t.tax_percent = c.tax_percent
        GROUP BY i.id, c.tax_percent, t.taxable HAVING SUM(c.net_amount) > COALESCE(t.taxable, 0)
        """,
    ),
    (
        "amount_paid_equals_allocations",
        "An invoice's amount paid equals its payment allocations (money plus early-payment discount; reversed "
        "ones count for nothing) plus credits applied, within [0, total].",
        """
        SELECT i.number, i.id, i.amount_paid,
               COALESCE(a.total, 0) + COALESCE(c.total, 0) + COALESCE(o.total, 0)
        FROM invoicing_invoice i
        LEFT JOIN (SELECT invoice_id, SUM(amount + discount) total FROM payments_allocation
                   WHERE reversed_at IS NULL GROUP BY invoice_id) a
               ON a.invoice_id = i.id
        LEFT JOIN (SELECT invoice_id, SUM(amount) total FROM invoicing_creditapplication GROUP BY invoice_id) c
               ON c.invoice_id = i.id
        LEFT JOIN (SELECT credit_note_id, SUM(amount) total FROM invoicing_creditapplication
                   GROUP BY credit_note_id) o ON o.credit_note_id = i.id
        WHERE i.amount_paid <> COALESCE(a.total, 0) + COALESCE(c.total, 0) + COALESCE(o.total, 0)
           OR i.amount_paid < 0 OR i.amount_paid > i.gross_total
        """,
    ),
    (
        "payment_allocations_within_amount",
        "A payment's allocated amount equals its allocations not reversed, and allocations plus refunds never "
        "exceed it.",
        """
        SELECT p.number, p.id, p.amount, p.allocated_amount, COALESCE(SUM(a.amount), 0), p.refunded_amount
        FROM payments_payment p
        LEFT JOIN payments_allocation a ON a.payment_id = p.id AND a.reversed_at IS NULL
        GROUP BY p.id
        HAVING p.allocated_amount <> COALESCE(SUM(a.amount), 0)
            OR COALESCE(SUM(a.amount), 0) + p.refunded_amount > p.amount
        """,
    ),
    (
        "payment_refunded_equals_refunds",
        "A payment's refunded amount equals the sum of its refunds.",
        """
        SELECT p.number, p.id, p.refunded_amount, COALESCE(SUM(r.amount), 0)
        FROM payments_payment p LEFT JOIN payments_refund r ON r.payment_id = p.id
        GROUP BY p.id HAVING p.refunded_amount <> COALESCE(SUM(r.amount), 0)
        """,
    ),
    (
        "reversed_payment_allocations_reversed",
        "A reversed payment's allocations are all marked reversed, and a received payment's none.",
        """
        SELECT p.number, p.id, p.status, COUNT(a.id)
        FROM payments_payment p JOIN payments_allocation a ON a.payment_id = p.id
        WHERE (p.status = 'reversed') = (a.reversed_at IS NULL)
        GROUP BY p.id
        """,
    ),
    (
        "status_agrees_with_balance",
        "Issued means nothing paid, partially paid means some, paid means all; drafts and voids hold no money.",
        """
        SELECT number, id, status, amount_paid, gross_total FROM invoicing_invoice
        WHERE (status = 'issued' AND (amount_paid <> 0 OR gross_total = 0))
           OR (status = 'partially_paid' AND NOT (amount_paid > 0 AND amount_paid < gross_total))
           OR (status = 'paid' AND amount_paid <> gross_total)
           OR (status IN ('draft', 'void') AND amount_paid <> 0)
        """,
    ),
    (
        "numbers_unique",
        "Document numbers are unique.",
        """
        SELECT number, MIN(id), COUNT(*) FROM invoicing_invoice
        WHERE number IS NOT NULL GROUP BY number HAVING COUNT(*) > 1
        """,
    ),
    (
        "numbers_gapless",
        "Numbers run 1..N without gaps per series and year, and the sequence stands at N.",
        """
        SELECT s.series || '-' || s.year, s.id, s.last_number, COALESCE(MAX(i.sequence_number), 0), COUNT(i.id)
        FROM invoicing_numbersequence s
        LEFT JOIN invoicing_invoice i ON i.series = s.series AND i.sequence_year = s.year
                                      AND i.sequence_number IS NOT NULL
        GROUP BY s.id
        HAVING s.last_number <> COUNT(i.id) OR COALESCE(MAX(i.sequence_number), 0) <> COUNT(i.id)
        """,
    ),
    (
        "order_line_invoiced_once",
        "No order line is on two invoices (a void invoice's lines no longer count).",
        """
        SELECT 'OrderLine', l.order_line_id, COUNT(*) FROM invoicing_invoiceline l
        JOIN invoicing_invoice i ON i.id = l.invoice_id
        WHERE l.order_line_id IS NOT NULL AND i.status <> 'void'
        GROUP BY l.order_line_id HAVING COUNT(*) > 1
        """,
    ),
    (
        "void_lines_released",
        "An invoice line is marked voided exactly when its invoice is void.",
        """
        SELECT i.number, i.id, l.position, l.voided FROM invoicing_invoiceline l
        JOIN invoicing_invoice i ON i.id = l.invoice_id
        WHERE l.voided <> (i.status = 'void')
        """,
    ),
    (
        "penalty_period_once",
        "No penalty period is charged twice for an invoice.",
        """
        SELECT i.number, i.id, a.period_end, COUNT(*) FROM payments_penaltyassessment a
        JOIN invoicing_invoice i ON i.id = a.invoice_id
        GROUP BY i.id, a.period_end HAVING COUNT(*) > 1
        """,
    ),
    (
        "penalty_periods_do_not_overlap",
        "An invoice's penalty periods follow each other without overlapping.",
        """
        SELECT i.number, i.id, a.period_start, b.period_end FROM payments_penaltyassessment a
        JOIN payments_penaltyassessment b ON b.invoice_id = a.invoice_id AND b.id <> a.id
             AND a.period_start <= b.period_end AND b.period_start <= a.period_end
        JOIN invoicing_invoice i ON i.id = a.invoice_id
        """,
    ),
    (
        "penalties_within_cap",
        "An invoice's penalties (interest, fees and reminder fees) never exceed its cap.",
        """
        WITH charges AS (
            SELECT invoice_id, interest + fee AS amount FROM payments_penaltyassessment
            UNION ALL
            SELECT invoice_id, fee FROM payments_dunningitem WHERE fee > 0)
        SELECT i.number, i.id, SUM(c.amount),
               ROUND(i.gross_total * CAST(i.terms_snapshot ->> 'penalty_cap_percent' AS NUMERIC) / 100, 2)
        FROM charges c JOIN invoicing_invoice i ON i.id = c.invoice_id
        WHERE COALESCE(i.terms_snapshot ->> 'penalty_cap_percent', '') <> ''
        GROUP BY i.id
        HAVING SUM(c.amount)
               > ROUND(i.gross_total * CAST(i.terms_snapshot ->> 'penalty_cap_percent' AS NUMERIC) / 100, 2)
        """,
    ),
    (
        "customer_balance_consistent",
        "A customer's balance from open items less credit equals billed less received (not reversed, less "
        "refunds), credited and discounts taken.",
        """
        WITH docs AS (
            SELECT customer_id,
                   SUM(CASE WHEN kind <> 'credit_note' THEN gross_total - amount_paid ELSE 0 END) AS open_items,
                   SUM(CASE WHEN kind = 'credit_note' THEN gross_total - amount_paid ELSE 0 END) AS open_credit,
                   SUM(CASE WHEN kind <> 'credit_note' THEN gross_total ELSE -gross_total END) AS billed
            FROM invoicing_invoice WHERE status NOT IN ('draft', 'void') GROUP BY customer_id),
        pays AS (
            SELECT customer_id, SUM(amount - allocated_amount - refunded_amount) AS unallocated,
                   SUM(amount - refunded_amount) AS received
            FROM payments_payment WHERE status <> 'reversed' GROUP BY customer_id),
        discounts AS (
            SELECT p.customer_id, SUM(a.discount) AS taken
            FROM payments_allocation a JOIN payments_payment p ON p.id = a.payment_id
            WHERE a.reversed_at IS NULL GROUP BY p.customer_id)
        SELECT c.code, c.id, COALESCE(d.open_items, 0) - COALESCE(d.open_credit, 0) - COALESCE(p.unallocated, 0),
               COALESCE(d.billed, 0) - COALESCE(p.received, 0) - COALESCE(x.taken, 0)
        FROM billing_customer c LEFT JOIN docs d ON d.customer_id = c.id LEFT JOIN pays p ON p.customer_id = c.id
        LEFT JOIN discounts x ON x.customer_id = c.id
        WHERE COALESCE(d.open_items, 0) - COALESCE(d.open_credit, 0) - COALESCE(p.unallocated, 0)
              <> COALESCE(d.billed, 0) - COALESCE(p.received, 0) - COALESCE(x.taken, 0)
        """,
    ),
]


def _label(check: str, row: tuple) -> str:
    number, pk, *rest = row
    model = {
        "numbers_gapless": "NumberSequence",
        "customer_balance_consistent": "Customer",
        "payment_allocations_within_amount": "Payment",
        "payment_refunded_equals_refunds": "Payment",
        "reversed_payment_allocations_reversed": "Payment",
        "order_line_invoiced_once": "OrderLine",
    }.get(check, "Invoice")
    name = number if isinstance(number, str) and number and number != "OrderLine" else f"{model} #{pk}"
    return f"{name}: " + ", ".join(str(v) for v in rest)


def issued_unchanged(batch: int = 2000) -> list[str]:
    """Issued documents, void ones included, still match the fingerprint taken at issue (read in
    batches). A draft voided before issue has no fingerprint."""
    bad = []
    qs = Invoice.objects.exclude(status="draft").exclude(content_sha256="").order_by("pk")
    last = 0
    while True:
        chunk = list(qs.filter(pk__gt=last).prefetch_related("lines")[:batch])
        if not chunk:
            return bad
        for invoice in chunk:
            lines = sorted(invoice.lines.all(), key=lambda line: (line.position, line.id))
            if invoice.fingerprint(lines=lines) != invoice.content_sha256:
                bad.append(f"{_doc(invoice.number, invoice.pk)}: content differs from what was issued")
        last = chunk[-1].pk


def run_audit() -> list[Finding]:
    findings = []
    for name, description, sql in CHECKS:
        rows = _rows(sql)
        if rows:
            findings.append(Finding(name, description, [_label(name, r) for r in rows]))
    changed = issued_unchanged()
    if changed:
        findings.append(Finding("issued_unchanged", "Issued documents never change after issue.", changed))
    return findings
