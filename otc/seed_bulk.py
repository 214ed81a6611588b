"""The fast path of `seed_demo --invoices N`: a large, consistent order-to-cash history written
with PostgreSQL COPY instead of one service call per document.

Speed comes from doing the business arithmetic once in Python and streaming the rows: no ORM
objects per document, no per-row round trip, no audit or order events for the bulk history. What
the services guarantee is reproduced on purpose, and `otc_audit` checks all of it afterwards:

- lines and totals by `billing.money` (EN 16931: line nets rounded half-up, tax per rate rounded
  once, gross = net + tax), order totals equal to the invoice's (one order per invoice);
- numbers gapless per series and year in the order of the issue dates, the NumberSequence rows set
  to the last number given;
- snapshots frozen at issue (`Customer.snapshot`, `PaymentTerms.snapshot`, the seller) and the
  content fingerprint computed exactly as `Invoice.fingerprint` does, so `issued_unchanged` holds;
- every payment allocated to the invoice it pays (a few overpay and keep the rest as credit),
  amounts paid equal to the allocations, statuses following the balances, orders closed once
  their invoice is paid.

Master data (tax rates, terms, products, the named demo customers) still goes through the normal
seeder and services; the thousands of further customers are generated and copied in.
Everything runs in one transaction: it lands whole or not at all.
"""

import hashlib
import io
import json
import random
import time
from collections import defaultdict
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal

from django.conf import settings
from django.db import connection, models, transaction
from django.utils import timezone

from billing import money
from billing.models import Contact, Customer, PaymentTerms
from billing.terms import due_date as terms_due_date
from invoicing.models import ADDED_AFTER_ISSUE, MUTABLE_AFTER_ISSUE, Invoice, InvoiceLine, NumberSequence
from orders.models import Order, OrderLine
from orders.services import order_number
from payments.models import Allocation, Payment

BATCH = 20_000  # invoices per COPY round: bounded memory, one statement per table per round
INVOICES_PER_CUSTOMER = 50  # over the history: about two a month for the average account
Q3 = Decimal("0.001")
CENT = Decimal("0.01")

# Header fields of Invoice.fingerprint, taken from the model so the two never drift apart.
FINGERPRINT_HEADER = [
    f.attname
    for f in Invoice._meta.concrete_fields
    if f.attname not in MUTABLE_AFTER_ISSUE and f.attname not in {"content_sha256", "issued_by_id", "created_at"}
]

# --- COPY plumbing --------------------------------------------------------------------------------


def _escape(text: str) -> str:
    if "\\" in text or "\t" in text or "\n" in text or "\r" in text:
        return text.replace("\\", "\\\\").replace("\t", "\\t").replace("\n", "\\n").replace("\r", "\\r")
    return text


class Json:
    """A JSON value shared by many rows (the snapshots), serialized once: as COPY text, and as
    `json.dumps(..., sort_keys=True, default=str)` writes it inside Invoice.fingerprint."""

    __slots__ = ("copy_text", "fingerprint_text", "value")

    def __init__(self, value):
        self.value = json.loads(json.dumps(value))  # as it comes back from the database
        self.copy_text = _escape(json.dumps(self.value, separators=(",", ":")))
        self.fingerprint_text = json.dumps(self.value, sort_keys=True, default=str)


_TEXT = {
    str: _escape,
    int: str,
    Decimal: str,
    date: date.isoformat,
    datetime: datetime.isoformat,
    bool: lambda b: "t" if b else "f",
    type(None): lambda _: r"\N",
    Json: lambda j: j.copy_text,
    dict: lambda v: _escape(json.dumps(v, separators=(",", ":"))),
    list: lambda v: _escape(json.dumps(v, separators=(",", ":"))),
}


def _text(value) -> str:
    """One value in COPY's text format."""
    convert = _TEXT.get(type(value))
    if convert is None:  # subclasses: choices enums (str), and the like
        return _escape(str(value))
    return convert(value)


_REQUIRED = object()


class Copier:
    """Streams rows of one model into its table with COPY. Rows are dicts by attribute name; a
    field left out gets the model's default, so a column added later with a default needs no change here."""

    def __init__(self, model: type[models.Model]):
        self.model = model
        self.fields = list(model._meta.concrete_fields)
        self.spec = []  # (attname, the default as COPY text, or _REQUIRED)
        for f in self.fields:
            if f.has_default():
                default = _text(f.get_default())
            elif isinstance(f, models.DateTimeField) and (f.auto_now or f.auto_now_add):
                default = _text(timezone.now())
            elif f.null:
                default = r"\N"
            elif f.blank and f.empty_strings_allowed:
                default = ""
            else:
                default = _REQUIRED
            self.spec.append((f.attname, default))
        self.buffer = io.StringIO()
        self.count = 0

    def add(self, row: dict) -> None:
        values = []
        for name, default in self.spec:
            if name in row:
                values.append(_text(row[name]))
            elif default is _REQUIRED:
                raise KeyError(f"{self.model.__name__}.{name} has no default: give it a value")
            else:
                values.append(default)
        self.buffer.write("\t".join(values))
        self.buffer.write("\n")
        self.count += 1

    def flush(self) -> None:
        if not self.buffer.tell():
            return
        columns = ", ".join(connection.ops.quote_name(f.column) for f in self.fields)
        table = connection.ops.quote_name(self.model._meta.db_table)
        self.buffer.seek(0)
        with connection.cursor() as cursor:
            cursor.cursor.copy_expert(f"COPY {table} ({columns}) FROM STDIN", self.buffer)
        self.buffer = io.StringIO()


def _next_id(model: type[models.Model]) -> int:
    return (model.objects.aggregate(m=models.Max("pk"))["m"] or 0) + 1


def _reset_sequences(models_: Iterable[type[models.Model]]) -> None:
    with connection.cursor() as cursor:
        for model in models_:
            table = model._meta.db_table
            cursor.execute(
                f"SELECT setval(pg_get_serial_sequence(%s, 'id'), COALESCE((SELECT MAX(id) FROM {table}), 1))",  # noqa: S608
                [table],
            )


# --- Fingerprint, as Invoice.fingerprint computes it ------------------------------------------------


_HEADER_KEYS = sorted(FINGERPRINT_HEADER)
_LINE_KEYS = sorted(InvoiceLine.CONTENT_FIELDS)
_json_str = json.encoder.encode_basestring_ascii  # what json.dumps uses for strings (ensure_ascii)


def _json_value(value) -> str:
    """`value` as json.dumps(..., sort_keys=True, default=str) writes it."""
    kind = type(value)
    if kind is str:
        return _json_str(value)
    if kind is int:
        return str(value)
    if value is None:
        return "null"
    if kind is bool:
        return "true" if value else "false"
    if kind is Json:
        return value.fingerprint_text
    if kind is dict or kind is list:
        return json.dumps(value, sort_keys=True, default=str)
    return _json_str(str(value))  # Decimal, date, datetime: default=str


def fingerprint(header: dict, lines: list[dict]) -> str:
    """Invoice.fingerprint for rows not yet in the database: the same JSON payload, written directly
    (json.dumps over a million headers with their snapshots was most of the seeding time)."""
    # As Invoice.fingerprint: a field added after documents were issued counts only when set.
    keys = [k for k in _HEADER_KEYS if k not in ADDED_AFTER_ISSUE or header.get(k, "") != ""]
    head = ", ".join(f'"{k}": {_json_value(header[k])}' for k in keys)
    body = ", ".join("{" + ", ".join(f'"{k}": {_json_str(str(line[k]))}' for k in _LINE_KEYS) + "}" for line in lines)
    payload = '{"header": {' + head + '}, "lines": [' + body + "]}"
    return hashlib.sha256(payload.encode()).hexdigest()


# --- Generated customers ------------------------------------------------------------------------------

FIRST = [
    "Atelier",
    "Maison",
    "Groupe",
    "Cabinet",
    "Société",
    "Studio",
    "Comptoir",
    "Garage",
    "Clinique",
    "Institut",
    "Brasserie",
    "Librairie",
    "Pharmacie",
    "Hôtel",
    "Boulangerie",
    "Transports",
    "Menuiserie",
    "Imprimerie",
]
SECOND = [
    "Martin",
    "Bernard",
    "Dubois",
    "Thomas",
    "Robert",
    "Richard",
    "Petit",
    "Durand",
    "Leroy",
    "Moreau",
    "Simon",
    "Laurent",
    "Lefèvre",
    "Michel",
    "Garcia",
    "David",
    "Bertrand",
    "Roux",
    "Vincent",
    "Fournier",
    "Morel",
    "Girard",
    "André",
    "Mercier",
    "Dupont",
    "Lambert",
    "Bonnet",
    "François",
    "Martinez",
    "Legrand",
]
FORMS = ["SARL", "SAS", "SA", "& Fils", "et Associés", "EURL"]
CITIES = [
    ("Paris", "75"),
    ("Lyon", "69"),
    ("Marseille", "13"),
    ("Toulouse", "31"),
    ("Nantes", "44"),
    ("Bordeaux", "33"),
    ("Lille", "59"),
    ("Rennes", "35"),
    ("Strasbourg", "67"),
    ("Grenoble", "38"),
    ("Dijon", "21"),
    ("Nice", "06"),
    ("Montpellier", "34"),
    ("Reims", "51"),
    ("Tours", "37"),
]
STREETS = [
    "Rue de la République",
    "Avenue Jean Jaurès",
    "Boulevard Victor Hugo",
    "Rue Nationale",
    "Place du Marché",
    "Rue du Commerce",
    "Quai des Chartrons",
    "Rue Pasteur",
    "Avenue de la Gare",
    "Rue des Écoles",
]
FOREIGN = {
    "DE": ("EUR", ["Berlin 10115", "München 80331", "Hamburg 20095"], "GmbH", "eu_services"),
    "NL": ("EUR", ["Amsterdam 1012 AB", "Rotterdam 3011 AD"], "B.V.", "eu_services"),
    "BE": ("EUR", ["Bruxelles 1000", "Antwerpen 2000"], "NV", "eu_services"),
    "GB": ("GBP", ["London EC2A 4NE", "Manchester M1 1AE", "Leeds LS1 4DY"], "Ltd", "export"),
    "US": ("USD", ["New York 10013", "Chicago 60601", "Boston 02108"], "Inc.", "export"),
}
FRENCH_GROUPS = ["office", "it", "services", "food", "books", "training"]
REFERENCE_WORDS = ["payment", "invoice", "settlement", "virement", "remittance"]
# Payer profiles of the generated customers, with their share.
PAYERS = [("prompt", 45), ("late", 25), ("slow", 15), ("partial", 10), ("bad", 5)]


def _fr_vat(siren: int) -> str:
    return f"FR{(12 + 3 * (siren % 97)) % 97:02d}{siren:09d}"


@dataclass
class Account:
    """A customer as the bulk history needs it."""

    pk: int
    currency: str
    terms: PaymentTerms
    method: str
    payer: str
    catalogue: list = field(default_factory=list)  # (product, tax rate) pairs it buys
    discount: Decimal = Decimal("0")
    po_prefix: str = ""
    snapshot: "Json | None" = None


# --- The history -----------------------------------------------------------------------------------------


@dataclass
class Result:
    customers: int = 0
    orders: int = 0
    invoices: int = 0
    lines: int = 0
    payments: int = 0
    allocations: int = 0
    statuses: dict = field(default_factory=lambda: defaultdict(int))
    timings: dict = field(default_factory=dict)


class BulkSeeder:
    """Builds the large history on top of the master data a `Seeder` made (`master`)."""

    def __init__(
        self,
        *,
        master,
        quantities: dict,
        invoices: int,
        rng: random.Random,
        today: date,
        start: date,
        actor,
        log: Callable,
    ):
        self.master = master
        self.quantities = quantities
        self.count = invoices
        self.rng = rng
        self.today = today
        self.start = start
        self.actor_id = actor.pk
        self.now = timezone.now()
        self.log = log
        self.result = Result()
        self.seller = Json(dict(settings.OTC_COMPANY))

    def run(self) -> Result:
        self.started = time.monotonic()
        with transaction.atomic():
            with connection.cursor() as cursor:
                # Foreign keys are checked per statement, not queued up to the commit for millions of rows.
                cursor.execute("SET CONSTRAINTS ALL IMMEDIATE")
            self._step("customers", self.customers)
            self._step("documents", self.documents)
            self._step("payments", self.payments)
            self._step("numbering", self.numbering)
        return self.result

    def _step(self, name: str, fn: Callable) -> None:
        started, cpu = time.monotonic(), time.process_time()
        fn()
        self.result.timings[name] = time.monotonic() - started
        # CPU time of this process beside the wall time: on a shared machine the two differ a lot.
        self.log(f"  {name}: {self.result.timings[name]:.1f} s ({time.process_time() - cpu:.1f} s CPU here)")

    # Customers: the named ones from the master data, then generated ones copied in.
    def customers(self) -> None:
        rng = self.rng
        products = self.master.products_by_group
        self.accounts: list[Account] = []
        for customer, spec in self.master.customers:
            catalogue = [(p, p.tax_rate) for g in spec.buys for p in products[g]]
            self.accounts.append(
                Account(
                    customer.pk,
                    customer.currency,
                    customer.payment_terms,
                    customer.billing_method,
                    spec.payer,
                    catalogue,
                    spec.discount,
                    spec.po_prefix,
                )
            )
        wanted = max(len(self.accounts), self.count // INVOICES_PER_CUSTOMER)
        customers, contacts = Copier(Customer), Copier(Contact)
        next_customer, next_contact = _next_id(Customer), _next_id(Contact)
        terms = list(self.master.terms.values())
        payers = [p for p, _ in PAYERS]
        payer_weights = [w for _, w in PAYERS]
        now = self.now
        for n in range(wanted - len(self.accounts)):
            pk = next_customer + n
            country = "FR" if rng.random() < 0.8 else rng.choice(list(FOREIGN))
            name = f"{rng.choice(FIRST)} {rng.choice(SECOND)}"
            if country == "FR":
                currency, (city, dept) = "EUR", rng.choice(CITIES)
                postal, form = f"{dept}{rng.randint(0, 999):03d}", rng.choice(FORMS)
                groups = rng.sample(FRENCH_GROUPS, rng.randint(1, 3))
                tax_id = _fr_vat(300_000_000 + pk)
            else:
                currency, places, form, group = FOREIGN[country]
                city, postal = rng.choice(places).split(" ", 1)
                groups, tax_id = [group], ""
            full = f"{name} {form} {pk}"
            domain = f"c{pk}.example"
            payer = rng.choices(payers, payer_weights)[0]
            on_hold = payer == "bad" and rng.random() < 0.3
            row_terms = rng.choice(terms)
            method = "paper" if rng.random() < 0.15 else "electronic"
            customers.add(
                {
                    "id": pk,
                    "code": f"C{pk:05d}",
                    "name": full,
                    "legal_name": full,
                    "tax_id": tax_id,
                    "email": f"accounts@{domain}",
                    "phone": "+33 1 " + " ".join(str(rng.randint(10, 99)) for _ in range(4)),
                    "currency": currency,
                    "payment_terms_id": row_terms.pk,
                    "billing_method": method,
                    "billing_cycle": "per_order",
                    "credit_limit": None,
                    "on_hold": on_hold,
                    "on_hold_reason": "Invoices long overdue; deliveries stopped until the account is settled."
                    if on_hold
                    else "",
                    "billing_line1": f"{rng.randint(1, 180)} {rng.choice(STREETS)}",
                    "billing_city": city,
                    "billing_postal_code": postal,
                    "billing_country": country,
                    "created_at": now,
                    "updated_at": now,
                }
            )
            contacts.add(
                {
                    "id": next_contact + n,
                    "customer_id": pk,
                    "name": "Accounts payable",
                    "email": f"ap@{domain}",
                    "role": "Accounts payable",
                    "receives_invoices": True,
                }
            )
            catalogue = [(p, p.tax_rate) for g in groups for p in products[g]]
            discount = Decimal("5") if rng.random() < 0.1 else Decimal("0")
            self.accounts.append(
                Account(
                    pk, currency, row_terms, method, payer, catalogue, discount, "PO-" if rng.random() < 0.4 else ""
                )
            )
            if customers.count >= BATCH:
                customers.flush()
                contacts.flush()
        customers.flush()
        contacts.flush()
        _reset_sequences([Customer, Contact])
        # The snapshots frozen on invoices, made by the model's own method from the stored rows.
        stored = Customer.objects.prefetch_related("contacts").in_bulk([a.pk for a in self.accounts])
        for account in self.accounts:
            account.snapshot = Json(stored[account.pk].snapshot())
        self.terms_snapshots = {}
        self.result.customers = len(self.accounts)

    def _terms_snapshot(self, terms: PaymentTerms, currency: str) -> Json:
        key = (terms.pk, currency)
        if key not in self.terms_snapshots:
            self.terms_snapshots[key] = Json(terms.snapshot(currency))
        return self.terms_snapshots[key]

    def _issue_days(self) -> list[date]:
        """N issue dates on working days over the period, more recent months a little busier."""
        days = []
        day = self.start
        while day <= self.today:
            if day.weekday() < 5:
                days.append(day)
            day += timedelta(days=1)
        span = len(days)
        weights = [1 + 0.3 * i / span for i in range(span)]  # 30 % growth over the period
        return sorted(self.rng.choices(days, weights, k=self.count))

    # Orders, order lines, invoices and invoice lines, in issue-date order.
    def documents(self) -> None:
        rng = self.rng
        issue_days = self._issue_days()
        accounts = self.accounts
        weights = [rng.lognormvariate(0, 0.8) for _ in accounts]  # some accounts buy much more than others
        chosen = rng.choices(range(len(accounts)), weights, k=self.count)
        copiers = {m: Copier(m) for m in (Order, OrderLine, Invoice, InvoiceLine)}
        ids = {m: _next_id(m) for m in copiers}
        self.sequences: dict[int, int] = defaultdict(int)
        self.plans: list[tuple] = []  # (received_on, customer, invoice id, amount, currency, methods, overpay)
        self.paid: dict[int, Decimal] = {}
        statuses = self.result.statuses
        for i, day in enumerate(issue_days):
            account = accounts[chosen[i]]
            order_id, invoice_id = ids[Order], ids[Invoice]
            ids[Order] += 1
            ids[Invoice] += 1
            order_date = day - timedelta(days=rng.choice([0, 1, 1, 2, 2, 3, 4, 5, 7]))
            reference = f"{account.po_prefix}{rng.randint(10000, 99999)}" if account.po_prefix else ""
            lines = []
            for position, (product, rate) in enumerate(
                rng.sample(account.catalogue, min(len(account.catalogue), rng.choice([1, 1, 2, 2, 3]))), start=1
            ):
                low, high = self.quantities.get(product.unit, (1, 3 if product.unit_price >= 1000 else 6))
                quantity = Decimal(rng.randint(low, high)).quantize(Q3)
                discount = (account.discount if account.discount and rng.random() < 0.5 else Decimal("0")).quantize(
                    CENT
                )
                net = money.line_net(quantity, product.unit_price, discount, account.currency)
                lines.append((position, product, rate, quantity, discount, net))
            result = money.totals(
                (money.TaxableLine(net=ln[5], rate=ln[2].rate.quantize(CENT), category=ln[2].category) for ln in lines),
                account.currency,
            )
            terms = account.terms
            due = terms_due_date(day, terms.due_days, terms.end_of_month)
            year = day.year
            self.sequences[year] += 1
            sequence = self.sequences[year]
            issued_at = min(datetime(day.year, day.month, day.day, 17, rng.randint(0, 59), tzinfo=UTC), self.now)
            entered = min(
                datetime(
                    order_date.year,
                    order_date.month,
                    order_date.day,
                    rng.randint(8, 16),
                    rng.randint(0, 59),
                    tzinfo=UTC,
                ),
                issued_at,
            )
            number = f"INV-{year}-{sequence:06d}"
            paid, last_paid = self._plan_payments(account, number, invoice_id, day, due, result.gross)
            status = "paid" if paid == result.gross else "partially_paid" if paid else "issued"
            statuses[status] += 1
            copiers[Order].add(
                {
                    "id": order_id,
                    "number": order_number(order_id),
                    "customer_id": account.pk,
                    "customer_reference": reference,
                    "order_date": order_date,
                    "currency": account.currency,
                    "status": "closed" if status == "paid" else "invoiced",
                    "net_total": result.net,
                    "tax_total": result.tax,
                    "gross_total": result.gross,
                    "channel": rng.choice(["ui", "ui", "ui", "api", "import"]),
                    "entry_started_at": entered,
                    "confirmed_at": entered + timedelta(seconds=rng.randint(35, 420)),
                    "fulfilled_at": issued_at - timedelta(hours=rng.randint(1, 6)),
                    "created_by_id": self.actor_id,
                    "created_at": entered,
                }
            )
            invoice_lines = []
            for position, product, rate, quantity, discount, net in lines:
                line_id = ids[OrderLine]
                ids[OrderLine] += 1
                common = {
                    "position": position,
                    "description": product.name,
                    "quantity": quantity,
                    "unit": product.unit,
                    "unit_price": product.unit_price.quantize(CENT),
                    "discount_percent": discount,
                    "tax_percent": rate.rate.quantize(CENT),
                    "tax_category": rate.category,
                    "net_amount": net,
                }
                copiers[OrderLine].add(
                    {"id": line_id, "order_id": order_id, "product_id": product.pk, "tax_rate_id": rate.pk, **common}
                )
                invoice_line = {
                    "id": ids[InvoiceLine],
                    "invoice_id": invoice_id,
                    "credited_line_id": None,
                    "order_line_id": line_id,
                    "order_number": order_number(order_id),
                    "order_date": order_date,
                    "customer_reference": reference,
                    "sku": product.sku,
                    "tax_note": rate.legal_note,
                    **common,
                }
                ids[InvoiceLine] += 1
                invoice_lines.append(invoice_line)
                copiers[InvoiceLine].add(invoice_line)
            paper = account.method == "paper"
            invoice = {
                "id": invoice_id,
                "kind": "invoice",
                "series": "INV",
                "number": number,
                "sequence_year": year,
                "sequence_number": sequence,
                "customer_id": account.pk,
                "status": status,
                "issue_date": day,
                "due_date": due,
                "currency": account.currency,
                "net_total": result.net,
                "tax_total": result.tax,
                "gross_total": result.gross,
                "amount_paid": paid,
                "customer_snapshot": account.snapshot,
                "terms_snapshot": self._terms_snapshot(terms, account.currency),
                "seller_snapshot": self.seller,
                "tax_breakdown": [
                    {"rate": str(b.rate), "category": b.category, "taxable": str(b.taxable), "tax": str(b.tax)}
                    for b in result.breakdown
                ],
                "original_id": None,
                "delivery_status": "posted" if paper else "sent",
                "delivered_at": min(issued_at + timedelta(days=int(paper), hours=1), self.now),
                "issued_at": issued_at,
                "issued_by_id": self.actor_id,
                "created_at": issued_at,
                "updated_at": last_paid or issued_at,
            }
            invoice["content_sha256"] = fingerprint(invoice, invoice_lines)
            copiers[Invoice].add(invoice)
            if (i + 1) % BATCH == 0:
                for copier in copiers.values():
                    copier.flush()
                self.log(f"    {i + 1} invoices, {time.monotonic() - self.started:.0f} s")
        for copier in copiers.values():
            copier.flush()
        _reset_sequences(copiers)
        self.result.orders = self.result.invoices = copiers[Invoice].count
        self.result.lines = copiers[InvoiceLine].count

    def _plan_payments(self, account: Account, number: str, invoice_id: int, issued: date, due: date, gross: Decimal):
        """When and how much this customer pays this invoice; only what was received by today counts."""
        rng, r = self.rng, self.rng.random()
        parts: list[tuple[date, Decimal | None]] = []  # None: the rest
        payer = account.payer
        if payer == "prompt":
            offset = -rng.randint(0, max(0, min(12, (due - issued).days))) if r < 0.9 else rng.randint(1, 10)
            if rng.random() < 0.08:  # paid in two instalments
                parts.append((due + timedelta(days=offset - 10), money.quantize(gross / 2, account.currency)))
            parts.append((due + timedelta(days=offset), None))
        elif payer == "late":
            parts.append((due + timedelta(days=rng.randint(-3, 2) if r < 0.2 else rng.randint(3, 40)), None))
        elif payer == "slow":
            if r < 0.9:
                parts.append((due + timedelta(days=rng.randint(20, 90)), None))
        elif payer == "partial":
            first = money.quantize(gross * Decimal(rng.choice([30, 40, 50, 60, 70])) / 100, account.currency)
            parts.append((due + timedelta(days=rng.randint(-5, 15)), first))
            if rng.random() < 0.8:
                parts.append((due + timedelta(days=rng.randint(25, 70)), None))
        elif payer == "bad" and r < 0.6:
            parts.append((due + timedelta(days=rng.randint(30, 150)), None))
        paid, last = Decimal("0.00"), None
        methods = account.terms.accepted_methods or ["bank_transfer"]
        for received_on, amount in parts:
            received_on = max(received_on, issued)
            if received_on > self.today:
                break
            amount = gross - paid if amount is None else min(amount, gross - paid)
            if amount <= 0:
                break
            paid += amount
            # A few customers round up and leave the difference on account as credit.
            extra = Decimal(rng.choice([1, 5, 10])) if rng.random() < 0.003 else Decimal("0")
            plan = (received_on, account.pk, invoice_id, number, amount, account.currency, rng.choice(methods), extra)
            self.plans.append(plan)
            last = datetime(received_on.year, received_on.month, received_on.day, 12, tzinfo=UTC)
        return paid, min(last, self.now) if last else None

    # Payments in the order they were received, each allocated to its invoice.
    def payments(self) -> None:
        rng = self.rng
        self.plans.sort(key=lambda p: (p[0], p[2]))
        payments, allocations = Copier(Payment), Copier(Allocation)
        next_payment, next_allocation = _next_id(Payment), _next_id(Allocation)
        sources = ["bank_import", "bank_import", "bank_import", "ui", "ui", "api"]
        for n, (received_on, customer_id, invoice_id, number, amount, currency, method, extra) in enumerate(self.plans):
            pk = next_payment + n
            at = min(
                datetime(received_on.year, received_on.month, received_on.day, rng.randint(8, 16), tzinfo=UTC), self.now
            )
            payments.add(
                {
                    "id": pk,
                    "number": f"PAY-{pk:06d}",
                    "customer_id": customer_id,
                    "method": method,
                    "method_accepted": True,
                    "amount": amount + extra,
                    "currency": currency,
                    "received_on": received_on,
                    "reference": f"{number} {rng.choice(REFERENCE_WORDS)}",
                    "source": rng.choice(sources),
                    "allocated_amount": amount,
                    "refunded_amount": Decimal("0.00"),
                    "created_by_id": self.actor_id,
                    "created_at": at,
                }
            )
            allocations.add(
                {
                    "id": next_allocation + n,
                    "payment_id": pk,
                    "invoice_id": invoice_id,
                    "amount": amount,
                    "created_by_id": self.actor_id,
                    "created_at": at,
                }
            )
            if payments.count % (BATCH * 2) == 0:
                payments.flush()
                allocations.flush()
        payments.flush()
        allocations.flush()
        _reset_sequences([Payment, Allocation])
        self.result.payments = payments.count
        self.result.allocations = allocations.count

    def numbering(self) -> None:
        """The sequences stand at the last number given (the database held no invoices before)."""
        for year, last in self.sequences.items():
            NumberSequence.objects.update_or_create(series="INV", year=year, defaults={"last_number": last})
