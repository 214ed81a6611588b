"""Seed a believable demo company: master data and a year of orders, invoices and payments.

Every document is made by the services users go through (order_create, order_confirm,
order_fulfill, invoice_create_from_orders, invoice_issue, payment_record), so totals, numbers,
statuses and the audit trail follow the same rules as in real use. The history is simulated day
by day, so invoice numbers run in the order of their issue dates, as the law wants.
"""

import argparse
import random
import time
from collections import defaultdict
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from decimal import ROUND_CEILING, Decimal

from django.contrib.auth import get_user_model
from django.core.management.base import BaseCommand, CommandError
from django.db import connection, transaction
from django.db.models import Count, Sum
from django.utils import timezone
from django.utils.text import slugify

from billing.errors import Conflict
from billing.models import BillingMethod, Customer, PaymentCycle, PaymentTerms, TaxRate
from billing.money import quantize
from billing.services import customer_create, customer_update
from invoicing.models import DeliveryStatus, Invoice, InvoiceKind, InvoiceStatus
from invoicing.services import invoice_create_from_orders, invoice_issue
from orders.models import Order, OrderEvent, OrderStatus, Product
from orders.services import order_cancel, order_confirm, order_create, order_fulfill
from otc.celery import app as celery_app
from payments.models import Allocation, Payment
from payments.services import payment_record

DEMO_USERNAME = "demo"
DEMO_PASSWORD = "demo"  # noqa: S105 -- a demo login, printed on purpose

HELP = """Seed a demo company: tax rates, payment terms, customers, products and about a year of
orders, invoices and payments ending today, plus the login demo / demo (superuser).

Runs once: when the database already holds customers, orders or invoices it says so and does
nothing. The same --seed and last day (--until, default today) give the same data.

PDFs: every invoice is issued by the invoicing service, which asks a worker to render its PDF once
the transaction commits. On the embedded default (no REDIS_URL) tasks normally run in-process,
which would render a few hundred PDFs before this command returns. For the seeding only, the
render requests go to the broker instead (the files under var/broker): the worker started by
`make start` renders them in the background, and until then the invoices show their PDF as
'Rendering'; the periodic sweeper re-sends any that a lost message left pending. With Redis
configured nothing changes: the requests go to the worker as always.

Delivery: invoices issued before today are marked as e-mailed (electronic customers) or posted
(paper customers) on their issue day, as they would have been; only today's invoices are left for
the worker to deliver once their PDFs are ready."""


# --- Master data ---------------------------------------------------------------------------

TAX_RATES = {
    "standard": {"name": "Standard 20%", "rate": "20.00", "category": "standard"},
    "reduced": {"name": "Reduced 5.5%", "rate": "5.50", "category": "reduced"},
    "export": {
        "name": "Zero-rated export",
        "rate": "0",
        "category": "zero",
        "legal_note": "Export of goods outside the EU, VAT zero-rated (Art. 146 Directive 2006/112/EC).",
    },
    "exempt": {
        "name": "Exempt (vocational training)",
        "rate": "0",
        "category": "exempt",
        "legal_note": "VAT exempt: vocational training, Art. 261-4-4° a of the French General Tax Code.",
    },
    "reverse_charge": {
        "name": "Reverse charge (EU B2B services)",
        "rate": "0",
        "category": "reverse_charge",
        "legal_note": "Reverse charge: VAT to be accounted for by the customer, Art. 196 Directive 2006/112/EC.",
    },
}

TRANSFER_METHODS = ["bank_transfer", "sepa_direct_debit", "card"]
TERMS = {
    "net30": {
        "name": "Net 30",
        "due_days": 30,
        "accepted_methods": ["bank_transfer", "sepa_direct_debit", "card", "check"],
    },
    "net45eom": {
        "name": "Net 45 end of month",
        "due_days": 45,
        "end_of_month": True,
        "payment_cycle": PaymentCycle.MONTHLY,
        "accepted_methods": ["bank_transfer", "wire"],
        "annual_interest_rate": Decimal("12.00"),
        "fixed_fee": Decimal("40.00"),
    },
    "2_10_net30": {
        "name": "2/10 Net 30",
        "due_days": 30,
        "discount_percent": Decimal("2.00"),
        "discount_days": 10,
        "accepted_methods": ["bank_transfer", "sepa_direct_debit"],
        "grace_days": 5,
        "annual_interest_rate": Decimal("10.00"),
        "fixed_fee": Decimal("40.00"),
        "penalty_cap_percent": Decimal("15.00"),
    },
    "receipt": {
        "name": "Due on receipt",
        "due_days": 0,
        "accepted_methods": ["card", "bank_transfer", "cash"],
    },
}

# (sku, name, unit, unit price, tax rate key, group); the group decides who buys it.
PRODUCTS = [
    ("OF-DESK-140", "Height-adjustable desk, 140 cm", "unit", "489.00", "standard", "office"),
    ("OF-CHAIR-ERG", "Ergonomic office chair", "unit", "229.00", "standard", "office"),
    ("OF-PED-3", "Mobile pedestal, 3 drawers", "unit", "145.00", "standard", "office"),
    ("OF-PAPER-A4", "A4 copy paper, box of 5 reams", "box", "32.50", "standard", "office"),
    ("OF-TONER-BK", "Black toner cartridge", "unit", "78.00", "standard", "office"),
    ("OF-WB-120", "Magnetic whiteboard 120 x 90 cm", "unit", "119.00", "standard", "office"),
    ("IT-LAP-14", '14" business laptop', "unit", "1249.00", "standard", "it"),
    ("IT-MON-27", '27" QHD monitor', "unit", "279.00", "standard", "it"),
    ("IT-DOCK-C", "USB-C docking station", "unit", "149.00", "standard", "it"),
    ("IT-KBM-WL", "Wireless keyboard and mouse set", "unit", "59.90", "standard", "it"),
    ("IT-HS-PRO", "Noise-cancelling headset", "unit", "89.00", "standard", "it"),
    ("SV-CONS-H", "Consulting", "hour", "120.00", "standard", "services"),
    ("SV-INST-D", "On-site installation", "day", "680.00", "standard", "services"),
    ("SV-SUP-M", "Support contract", "month", "350.00", "standard", "services"),
    ("FD-COFFEE-1K", "Coffee beans, 1 kg", "bag", "18.90", "reduced", "food"),
    ("FD-TEA-100", "Organic tea, box of 100", "box", "12.40", "reduced", "food"),
    ("FD-WATER-24", "Spring water, pack of 24", "pack", "6.90", "reduced", "food"),
    ("BK-ACC-HB", "Accounting handbook", "unit", "32.50", "reduced", "books"),
    ("BK-VAT-GD", "Practical VAT guide", "unit", "45.00", "reduced", "books"),
    ("TR-DAY", "Vocational training day", "day", "950.00", "exempt", "training"),
    ("TR-CERT", "Certification exam", "unit", "250.00", "exempt", "training"),
    ("TR-ELRN", "E-learning seat, 12 months", "unit", "180.00", "exempt", "training"),
    ("RC-CONS-H", "Consulting (EU B2B)", "hour", "130.00", "reverse_charge", "eu_services"),
    ("RC-AUDIT-D", "Process audit (EU B2B)", "day", "1100.00", "reverse_charge", "eu_services"),
    ("RC-SAAS-U", "Hosted platform, per user per month", "user", "39.00", "reverse_charge", "eu_services"),
    ("RC-IMPL", "Implementation package (EU B2B)", "unit", "2400.00", "reverse_charge", "eu_services"),
    ("EX-DESK-140", "Height-adjustable desk, 140 cm (export)", "unit", "489.00", "export", "export"),
    ("EX-LAP-14", '14" business laptop (export)', "unit", "1249.00", "export", "export"),
    ("EX-MON-27", '27" QHD monitor (export)', "unit", "279.00", "export", "export"),
    ("EX-FREIGHT", "Export freight and insurance", "shipment", "185.00", "export", "export"),
    ("IT-PRN-LASER", "Laser printer (discontinued)", "unit", "199.00", "standard", "retired"),
]

# Quantities by unit: (low, high), whole numbers; goods by the piece get fewer the dearer they are.
QUANTITIES = {"hour": (2, 24), "day": (1, 3), "month": (1, 3), "user": (5, 40), "shipment": (1, 1), "box": (2, 20)}


HOLD_REASON = "Several invoices more than 60 days overdue; deliveries stopped until the account is settled."

# Two rows per customer. Identity: name | tax id | street | postal code | city | region | country | phone.
# Commerce: currency | terms | billing method | billing cycle | credit limit | product groups | payer |
# orders a month | PO prefix | line discount % | buyer. Payers: prompt, late, partial, slow, bad (put on hold).
# The first five cover every kind of payer, so a small --customers still shows all of them.
CUSTOMER_TABLE = [
    (
        "Atelier Dupont & Fils | FR46401234562 | 14 Quai des Chartrons | 33000 | Bordeaux | | FR | +33 5 56 12 34 56",
        "EUR | 2_10_net30 | electronic | per_order | | office it services | prompt | 3 | ADF- | 0 | Julie Dupont",
    ),
    (
        "Thames Office Supplies Ltd | GB234567805 | 88 Worship Street | EC2A 4NE | London | | GB | +44 20 7946 0321",
        "GBP | net30 | electronic | weekly | | export | late | 3.5 | TOS/PO/ | 0 | Oliver Bennett",
    ),
    (
        "Brasserie Saint-Georges | FR31523456788 | 5 Place Kléber | 67000 | Strasbourg | | FR | +33 3 88 32 10 10",
        "EUR | net30 | paper | per_order | 9000 | food office | bad | 2.5 | | 0 | Marc Weber",
    ),
    (
        "Clinique Vétérinaire des Alpes | FR28498765437 | 45 Avenue Alsace-Lorraine | 38000 | Grenoble | | FR | "
        "+33 4 76 12 12 12",
        "EUR | net30 | electronic | per_order | 12000 | office it | partial | 1.5 | | 0 | Lucie Blanc",
    ),
    (
        "Hudson Analytics Inc. | | 200 Hudson Street | 10013 | New York | NY | US | +1 212 555 0147",
        "USD | net30 | electronic | per_order | | export | slow | 2 | HA- | 0 | Grace Lee",
    ),
    (
        "Cabinet Lefèvre Expertise Comptable | FR86334567898 | 27 Rue de Châteaudun | 75009 | Paris | | FR | "
        "+33 1 42 80 11 22",
        "EUR | net30 | electronic | monthly | | books office training | prompt | 2 | | 0 | Anne Lefèvre",
    ),
    (
        "Hôtel du Parc SAS | FR82445678907 | 3 Promenade des Anglais | 06000 | Nice | | FR | +33 4 93 87 00 00",
        "EUR | net45eom | paper | monthly | | food office | late | 3 | | 0 | Sophie Martin",
    ),
    (
        "Transports Girard SA | FR96387654320 | 112 Rue Nationale | 59000 | Lille | | FR | +33 3 20 55 66 77",
        "EUR | 2_10_net30 | electronic | weekly | 25000 | it services office | prompt | 3 | TG- | 5 | Paul Girard",
    ),
    (
        "Librairie Papillon | FR75512345679 | 9 Rue du Taur | 31000 | Toulouse | | FR | +33 5 61 22 33 44",
        "EUR | receipt | paper | per_order | | books office | prompt | 1.5 | | 0 | Claire Papillon",
    ),
    (
        "Van Dijk Logistics B.V. | NL812345678B01 | Blaak 16 | 3011 AD | Rotterdam | | NL | +31 10 123 4567",
        "EUR | 2_10_net30 | electronic | per_order | | eu_services | prompt | 1.5 | | 0 | Pieter van Dijk",
    ),
    (
        "Müller Maschinenbau GmbH | DE812345673 | Königstraße 40 | 70173 | Stuttgart | | DE | +49 711 123 4567",
        "EUR | net45eom | electronic | monthly | | eu_services | partial | 2 | 4500 | 0 | Stefan Müller",
    ),
    (
        "Rossi Arredamenti S.r.l. | IT02345670018 | Via Manzoni 12 | 20121 | Milano | MI | IT | +39 02 1234 5678",
        "EUR | net30 | electronic | per_order | 30000 | eu_services | late | 1 | | 0 | Giulia Rossi",
    ),
    (
        "École Horizon Formation | FR40312349871 | 2 Quai de la Fosse | 44000 | Nantes | | FR | +33 2 40 11 22 33",
        "EUR | net30 | electronic | monthly | | training books it | slow | 1.5 | | 0 | Karim Benali",
    ),
    (
        "García y Asociados S.L. | ESB12345674 | Calle de Colón 18 | 46002 | Valencia | | ES | +34 963 123 456",
        "EUR | net30 | electronic | per_order | | eu_services | prompt | 1 | | 0 | Lucía García",
    ),
    (
        "Highland Distillers Ltd | GB987654311 | 21 Royal Mile | EH1 1YZ | Edinburgh | | GB | +44 131 496 0022",
        "GBP | 2_10_net30 | electronic | per_order | | export | prompt | 1 | | 0 | Fiona MacLeod",
    ),
    (
        "Pharmacie Centrale de Rennes | FR18423450980 | 1 Place de la République | 35000 | Rennes | | FR | "
        "+33 2 99 79 00 00",
        "EUR | net30 | electronic | weekly | | office food | prompt | 2 | | 0 | Yann Le Goff",
    ),
    (
        "Brouwer & Peeters NV | BE0456789133 | Meir 50 | 2000 | Antwerpen | | BE | +32 3 123 45 67",
        "EUR | net45eom | electronic | monthly | | eu_services | late | 1 | | 0 | Els Peeters",
    ),
    (
        "Studio Graphique Lumière | FR89476543210 | 36 La Canebière | 13001 | Marseille | | FR | +33 4 91 00 11 22",
        "EUR | receipt | electronic | per_order | | it services | partial | 1 | | 0 | Hugo Fabre",
    ),
    (
        "Pacific Trade Partners LLC | | 101 Mission Street | 94105 | San Francisco | CA | US | +1 415 555 0199",
        "USD | net45eom | electronic | monthly | | export | prompt | 1 | PTP- | 0 | Daniel Kim",
    ),
    (
        "Menuiserie Roux | FR25367890126 | 8 Rue de la Liberté | 21000 | Dijon | | FR | +33 3 80 30 40 50",
        "EUR | net30 | paper | per_order | 6000 | office services | slow | 1 | | 0 | Thierry Roux",
    ),
]


@dataclass
class Spec:
    """One demo customer: the fields customer_create takes, and how the customer behaves."""

    fields: dict
    contacts: list[dict]
    terms: str
    buys: tuple[str, ...]
    payer: str
    orders_per_month: float
    po_prefix: str
    discount: Decimal

    @property
    def hold_reason(self) -> str:
        return HOLD_REASON if self.payer == "bad" else ""

    @classmethod
    def parse(cls, identity: str, commerce: str) -> "Spec":
        name, tax_id, street, postal, city, region, country, phone = (f.strip() for f in identity.split("|"))
        currency, terms, method, cycle, limit, buys, payer, per_month, po, discount, buyer = (
            f.strip() for f in commerce.split("|")
        )
        domain = slugify(name.replace("&", " ")) + ".example"
        fields = {
            "name": name,
            "legal_name": name,
            "tax_id": tax_id,
            "email": f"accounts@{domain}",
            "phone": phone,
            "currency": currency,
            "billing_method": method,
            "billing_cycle": cycle,
            "credit_limit": Decimal(limit) if limit else None,
            "billing_line1": street,
            "billing_postal_code": postal,
            "billing_city": city,
            "billing_region": region,
            "billing_country": country,
        }
        contacts = [
            {"name": "Accounts payable", "email": f"ap@{domain}", "role": "Accounts payable"},
            {
                "name": buyer,
                "email": f"{slugify(buyer.split()[0])}@{domain}",
                "phone": phone,
                "role": "Buyer",
                "receives_invoices": False,
            },
        ]
        return cls(fields, contacts, terms, tuple(buys.split()), payer, float(per_month), po, Decimal(discount))


CUSTOMERS = [Spec.parse(*rows) for rows in CUSTOMER_TABLE]


# --- The simulation -----------------------------------------------------------------------


@dataclass
class Plan:
    """What will happen to one order on which day."""

    order: Order
    customer: Customer
    spec: Spec
    fulfil_on: date | None
    cancel_on: date | None = None


def _months_ago(day: date, months: int) -> date:
    month_index = day.year * 12 + day.month - 1 - months
    year, month = divmod(month_index, 12)
    for d in (day.day, 28):
        try:
            return date(year, month + 1, d)
        except ValueError:
            continue
    raise AssertionError("unreachable")


def _month_end(day: date) -> date:
    nxt = (day.replace(day=28) + timedelta(days=4)).replace(day=1)
    return nxt - timedelta(days=1)


def _at(day: date, hour: int, minute: int = 0, second: int = 0) -> datetime:
    return timezone.make_aware(datetime(day.year, day.month, day.day, hour, minute, second))


class Seeder:
    """Plays the history day by day: orders are entered, confirmed and delivered, invoices issued
    per billing cycle, and each customer pays them (or not) as its payer profile says."""

    def __init__(self, *, rng: random.Random, today: date, months: int, customers: int, actor):
        self.rng = rng
        self.today = today
        self.now = timezone.now()
        self.start = _months_ago(today, months)
        self.specs = CUSTOMERS[:customers]
        self.actor = actor
        # order id -> status -> the moment the order reached it in the simulated history
        self.stamps: dict[int, dict[str, datetime]] = defaultdict(dict)
        self.plans_by_day: dict[date, list[Plan]] = defaultdict(list)
        self.fulfilled: dict[int, list[Order]] = defaultdict(list)  # customer id -> orders awaiting billing
        self.payments_by_day: dict[date, dict[int, list]] = defaultdict(lambda: defaultdict(list))
        # The worst payer is put on hold 40 days before the end (or half-way through a short history).
        self.hold_on = max(today - timedelta(days=40), self.start + (today - self.start) / 2)
        self.queued_pdfs = 0
        self.issued: list[tuple[int, date, str]] = []  # invoice id, issue date, billing method

    # Master data
    def master_data(self) -> None:
        self.taxes = {}
        for key, data in TAX_RATES.items():
            rate = TaxRate(**{**data, "rate": Decimal(data["rate"])})
            rate.full_clean()
            rate.save()
            self.taxes[key] = rate
        self.terms = {}
        for key, data in TERMS.items():
            terms = PaymentTerms(**data)
            terms.full_clean()
            terms.save()
            self.terms[key] = terms
        self.products_by_group: dict[str, list[Product]] = defaultdict(list)
        for sku, name, unit, price, tax, group in PRODUCTS:
            product = Product(
                sku=sku,
                name=name,
                unit=unit,
                unit_price=Decimal(price),
                tax_rate=self.taxes[tax],
                active=group != "retired",
                description=f"{name}. Sold per {unit}.",
            )
            product.full_clean()
            product.save()
            self.products_by_group[group].append(product)
        self.customers: list[tuple[Customer, Spec]] = []
        for spec in self.specs:
            customer = customer_create(
                actor=self.actor,
                contacts=spec.contacts,
                payment_terms=self.terms[spec.terms],
                **spec.fields,
            )
            self.customers.append((customer, spec))

    # Orders are drawn up front; each is created on its order date.
    def draw_orders(self) -> list[tuple[date, Customer, Spec]]:
        drawn = []
        day = self.start
        while day <= self.today:
            if day.weekday() < 5:
                for customer, spec in self.customers:
                    if self.rng.random() < spec.orders_per_month / 21.7:
                        drawn.append((day, customer, spec))
            day += timedelta(days=1)
        return drawn

    def _lines(self, spec: Spec) -> list[dict]:
        catalogue = [p for group in spec.buys for p in self.products_by_group[group]]
        count = min(len(catalogue), self.rng.choice([1, 1, 2, 2, 3, 3, 4, 5]))
        lines = []
        for product in self.rng.sample(catalogue, count):
            low, high = QUANTITIES.get(product.unit, (1, 3 if product.unit_price >= 1000 else 6))
            line = {"product": product, "quantity": Decimal(self.rng.randint(low, high))}
            if spec.discount and self.rng.random() < 0.5:
                line["discount_percent"] = spec.discount
            lines.append(line)
        return lines

    def create_order(self, day: date, customer: Customer, spec: Spec) -> None:
        started = _at(day, self.rng.randint(8, 16), self.rng.randint(0, 59), self.rng.randint(0, 59))
        order = order_create(
            customer=customer,
            lines=self._lines(spec),
            actor=self.actor,
            customer_reference=f"{spec.po_prefix}{self.rng.randint(10000, 99999)}" if spec.po_prefix else "",
            order_date=day,
            channel=self.rng.choice(["ui", "ui", "ui", "api"]),
            entry_started_at=started,
        )
        stamps = self.stamps[order.pk]
        stamps[OrderStatus.DRAFT] = started
        age = (self.today - day).days
        if age <= 6 and self.rng.random() < 0.3:
            return  # still being entered
        try:
            order_confirm(order=order, actor=self.actor)
        except Conflict as refusal:
            # Credit control refused it: recent orders wait for a decision, older ones were dropped.
            if age > 14:
                order_cancel(order=order, actor=self.actor, reason=refusal.message[:200])
                stamps[OrderStatus.CANCELLED] = started + timedelta(days=2)
            return
        stamps[OrderStatus.CONFIRMED] = started + timedelta(seconds=self.rng.randint(35, 420))
        if self.rng.random() < 0.02 and age > 10:
            self.plans_by_day[day + timedelta(days=1)].append(Plan(order, customer, spec, None, day))
            return
        lead = self.rng.choice([0, 1, 1, 2, 2, 3, 4, 5, 7, 10])
        if age <= 5:
            lead = max(lead, 3)  # last week's orders are still on their way
        fulfil_on = day + timedelta(days=lead)
        while fulfil_on.weekday() >= 5:
            fulfil_on += timedelta(days=1)
        self.plans_by_day[fulfil_on].append(Plan(order, customer, spec, fulfil_on))

    def fulfil(self, day: date) -> None:
        for plan in self.plans_by_day.pop(day, []):
            if plan.cancel_on:
                order_cancel(order=plan.order, actor=self.actor, reason="Cancelled by the customer.")
                self.stamps[plan.order.pk][OrderStatus.CANCELLED] = _at(day, 11)
                continue
            order = order_fulfill(order=plan.order, actor=self.actor)
            self.stamps[order.pk][OrderStatus.FULFILLED] = _at(day, self.rng.randint(9, 17))
            self.fulfilled[plan.customer.pk].append(order)

    def bill(self, day: date) -> None:
        for customer, spec in self.customers:
            waiting = self.fulfilled.get(customer.pk)
            if not waiting:
                continue
            cycle = customer.billing_cycle
            if cycle == "weekly" and day.weekday() != 4:
                continue
            if cycle == "monthly" and day != _month_end(day):
                continue
            self.fulfilled[customer.pk] = []
            batches = [[o] for o in waiting] if cycle == "per_order" else [waiting]
            for orders in batches:
                draft = invoice_create_from_orders(orders=orders, actor=self.actor)
                invoice = invoice_issue(invoice=draft, actor=self.actor, issue_date=day)
                self.queued_pdfs += 1
                self.issued.append((invoice.pk, day, customer.billing_method))
                issued = _at(day, 18, self.rng.randint(0, 59))
                for order in orders:
                    self.stamps[order.pk][OrderStatus.INVOICED] = issued
                self.plan_payment(invoice, customer, spec)

    def plan_payment(self, invoice: Invoice, customer: Customer, spec: Spec) -> None:
        """Decide when this customer pays this invoice, in one or two parts, or not at all."""
        rng, due, gross = self.rng, invoice.due_date, invoice.gross_total
        parts: list[tuple[date, Decimal | None]] = []  # None: the balance
        r = rng.random()
        if spec.payer == "prompt":
            offset = -rng.randint(0, min(12, (due - invoice.issue_date).days)) if r < 0.85 else rng.randint(1, 10)
            parts.append((due + timedelta(days=offset), None))
        elif spec.payer == "late":
            parts.append((due + timedelta(days=rng.randint(-3, 2) if r < 0.2 else rng.randint(3, 35)), None))
        elif spec.payer == "partial":
            if r < 0.45:
                parts.append((due + timedelta(days=rng.randint(0, 20)), None))
            else:
                first = quantize(gross * Decimal(rng.choice([30, 40, 50, 60, 70])) / 100, invoice.currency)
                parts.append((due + timedelta(days=rng.randint(-5, 15)), first))
                if rng.random() < 0.6:
                    parts.append((due + timedelta(days=rng.randint(25, 70)), None))
        elif spec.payer == "slow":
            if r < 0.1:
                parts.append((due, None))
            elif r < 0.85:
                parts.append((due + timedelta(days=rng.randint(25, 80)), None))
        elif spec.payer == "bad" and r < 0.65:
            parts.append((due + timedelta(days=rng.randint(40, 120)), None))
        for pay_on, amount in parts:
            pay_on = max(pay_on, invoice.issue_date)
            if customer.payment_terms.payment_cycle == PaymentCycle.MONTHLY:
                pay_on = _month_end(pay_on)
            while pay_on.weekday() >= 5:
                pay_on += timedelta(days=1)
            if pay_on <= self.today:
                self.payments_by_day[pay_on][customer.pk].append((invoice, amount))

    def collect(self, day: date, customers: dict[int, tuple[Customer, Spec]]) -> None:
        for customer_id, items in self.payments_by_day.pop(day, {}).items():
            customer, spec = customers[customer_id]
            wanted: dict[int, Decimal] = {}
            invoices: dict[int, Invoice] = {}
            for invoice, amount in items:  # two parts of one invoice may fall on the same payment run
                if invoice.pk not in invoices:
                    invoice.refresh_from_db(fields=["amount_paid", "status"])
                    invoices[invoice.pk] = invoice
                    wanted[invoice.pk] = Decimal("0")
                balance = invoice.balance - wanted[invoice.pk]
                wanted[invoice.pk] += balance if amount is None else min(amount, balance)
            allocations = [{"invoice": invoices[pk], "amount": amt} for pk, amt in wanted.items() if amt > 0]
            if not allocations:
                continue
            total = sum((a["amount"] for a in allocations), Decimal("0"))
            if spec.payer == "prompt" and self.rng.random() < 0.02:
                # Rounded up: the difference stays with us as the customer's credit.
                total = (total / 100).to_integral_value(rounding=ROUND_CEILING) * 100
            methods = customer.payment_terms.accepted_methods or TRANSFER_METHODS
            method = "check" if self.rng.random() < 0.02 else self.rng.choice(methods)
            numbers = ", ".join(a["invoice"].number for a in allocations)
            payment_record(
                customer=customer,
                method=method,
                amount=total,
                currency=customer.currency,
                received_on=day,
                reference=f"{customer.code} {numbers}"[:140],
                source=self.rng.choice(["ui", "bank_import", "bank_import"]),
                allocations=allocations,
                actor=self.actor,
            )
            received = _at(day, self.rng.randint(8, 16), self.rng.randint(0, 59))
            for a in allocations:
                a["invoice"].refresh_from_db(fields=["amount_paid", "status"])
                if a["invoice"].status == InvoiceStatus.PAID:
                    for order in Order.objects.filter(
                        lines__invoice_lines__invoice=a["invoice"], status=OrderStatus.CLOSED
                    ).distinct():
                        self.stamps[order.pk][OrderStatus.CLOSED] = received

    def run(self) -> None:
        self.master_data()
        by_id = {c.pk: (c, s) for c, s in self.customers}
        drawn = defaultdict(list)
        for day, customer, spec in self.draw_orders():
            drawn[day].append((customer, spec))
        day = self.start
        while day <= self.today:
            for customer, spec in drawn.get(day, []):
                self.create_order(day, customer, spec)
            self.fulfil(day)
            self.bill(day)
            self.collect(day, by_id)
            for customer, spec in self.customers:
                if spec.hold_reason and day == self.hold_on:
                    customer_update(customer=customer, actor=self.actor, on_hold=True, on_hold_reason=spec.hold_reason)
            day += timedelta(days=1)
        # A customer paying in advance: money on account, allocated later.
        customer, spec = self.customers[0]
        payment_record(
            customer=customer,
            method=customer.payment_terms.accepted_methods[0],
            amount=Decimal("500.00"),
            currency=customer.currency,
            received_on=self.today,
            reference=f"{customer.code} advance payment",
            auto_allocate=False,
            actor=self.actor,
        )
        self.mark_delivered()
        self.backdate()
        self.assess_penalties()

    def assess_penalties(self) -> None:
        """Late-payment penalties on what is overdue today, as the daily penalty run would charge
        them on its first run: PEN invoices for the interest and fees of the invoices past grace."""
        from payments import penalties

        ids = list(penalties.candidates(as_of=self.today).order_by("pk").values_list("pk", flat=True))
        for start in range(0, len(ids), penalties.BATCH_SIZE):
            _assessed, issued, _interest, _fees = penalties.assess_batch(
                invoice_ids=ids[start : start + penalties.BATCH_SIZE], as_of=self.today, issue_date=self.today
            )
            self.queued_pdfs += issued

    def mark_delivered(self) -> None:
        """Invoices issued before today went out at the time, e-mailed or printed and posted.
        Saying so keeps the worker from e-mailing a year of history once it has rendered the PDFs;
        today's invoices are delivered by the worker as usual."""
        delivered = []
        for pk, day, method in self.issued:
            if day < self.today:
                paper = method == BillingMethod.PAPER
                delivered.append(
                    Invoice(
                        pk=pk,
                        delivery_status=DeliveryStatus.POSTED if paper else DeliveryStatus.SENT,
                        delivered_at=min(_at(day + timedelta(days=int(paper)), 18, 30), self.now),
                    )
                )
        Invoice.objects.bulk_update(delivered, ["delivery_status", "delivered_at"], 500)

    def backdate(self) -> None:
        """The order services stamp each step with now(); give each step the moment it had in the
        story, so order-entry speed and cycle times read right. Only orders and their timeline are
        touched: invoices and payments keep their frozen content, and the audit trail keeps the
        moment the rows were really written."""
        now = self.now

        def clamp(moment):
            return min(moment, now) if moment else moment

        orders = [
            Order(
                pk=pk,
                entry_started_at=clamp(stamps.get(OrderStatus.DRAFT)),
                confirmed_at=clamp(stamps.get(OrderStatus.CONFIRMED)),
                fulfilled_at=clamp(stamps.get(OrderStatus.FULFILLED)),
                created_at=clamp(stamps.get(OrderStatus.DRAFT)),
            )
            for pk, stamps in self.stamps.items()
        ]
        Order.objects.bulk_update(orders, ["entry_started_at", "confirmed_at", "fulfilled_at", "created_at"], 500)
        events = []
        for pk, order_id, to_status in OrderEvent.objects.values_list("pk", "order_id", "to_status"):
            moment = self.stamps.get(order_id, {}).get(to_status)
            if moment:
                events.append(OrderEvent(pk=pk, created_at=clamp(moment)))
        OrderEvent.objects.bulk_update(events, ["created_at"], 500)


@contextmanager
def pdf_rendering_on_worker() -> Iterator[None]:
    """Send PDF render requests to the broker rather than running them in this process."""
    conf = celery_app.conf
    eager = conf.task_always_eager
    conf.task_always_eager = False
    try:
        yield
    finally:
        conf.task_always_eager = eager


class Command(BaseCommand):
    help = HELP

    def create_parser(self, prog_name, subcommand, **kwargs):
        parser = super().create_parser(prog_name, subcommand, **kwargs)
        parser.formatter_class = argparse.RawDescriptionHelpFormatter  # keep the paragraphs of HELP
        return parser

    def add_arguments(self, parser):
        parser.add_argument(
            "--customers",
            type=int,
            default=len(CUSTOMERS),
            help=f"How many demo customers (1-{len(CUSTOMERS)}; default {len(CUSTOMERS)}).",
        )
        parser.add_argument(
            "--months", type=int, default=None, help="Months of history ending today (default 12; 24 with --invoices)."
        )
        parser.add_argument(
            "--invoices",
            type=int,
            default=None,
            help="Build a large history of this many invoices (with their orders, about as many payments and "
            "one customer per 50 invoices) by bulk COPY instead of the services: for load tests and benchmarks. "
            "PostgreSQL only.",
        )
        parser.add_argument("--seed", type=int, default=2026, help="Random seed: the same seed gives the same data.")
        parser.add_argument(
            "--until",
            type=date.fromisoformat,
            default=None,
            help="Last day of the history, YYYY-MM-DD (default today): the same day and seed give the same data.",
        )

    def handle(
        self, *args, customers: int, months: int | None, seed: int, until: date | None, invoices: int | None, **options
    ):
        if months is None:
            months = 24 if invoices else 12
        if invoices is not None and not 1 <= invoices <= 20_000_000:
            raise CommandError("--invoices must be between 1 and 20000000.")
        if invoices and connection.vendor != "postgresql":
            raise CommandError(
                "--invoices writes with PostgreSQL COPY and needs a PostgreSQL database (set DATABASE_URL); "
                f"this one is {connection.vendor}. Without --invoices, seed_demo makes the normal demo history here."
            )
        if not 1 <= customers <= len(CUSTOMERS):
            raise CommandError(f"--customers must be between 1 and {len(CUSTOMERS)}.")
        if not 1 <= months <= 60:
            raise CommandError("--months must be between 1 and 60.")
        if until and until > timezone.localdate():
            raise CommandError("--until cannot be in the future: payments are only recorded once received.")
        existing = {
            "customers": Customer.objects.count(),
            "orders": Order.objects.count(),
            "invoices": Invoice.objects.count(),
        }
        if any(existing.values()):
            summary = ", ".join(f"{n} {what}" for what, n in existing.items())
            self.stdout.write(f"The database already holds data ({summary}): seed_demo did nothing.")
            self._login_hint()
            return
        started = time.monotonic()
        if invoices:
            self._bulk(invoices=invoices, customers=customers, months=months, seed=seed, until=until)
            self._report_bulk(time.monotonic() - started)
            return
        with pdf_rendering_on_worker(), transaction.atomic():
            seeder = Seeder(
                rng=random.Random(seed),
                today=until or timezone.localdate(),
                months=months,
                customers=customers,
                actor=self._demo_user(),
            )
            seeder.run()
        elapsed = time.monotonic() - started
        self._report(seeder, elapsed)

    def _bulk(self, *, invoices: int, customers: int, months: int, seed: int, until: date | None) -> None:
        from otc.seed_bulk import BulkSeeder

        rng = random.Random(seed)
        today = until or timezone.localdate()
        self.stdout.write(f"Seeding {invoices} invoices over {months} months by bulk COPY...")
        with transaction.atomic():
            master = Seeder(rng=rng, today=today, months=months, customers=customers, actor=self._demo_user())
            master.master_data()
            self.bulk_result = BulkSeeder(
                master=master,
                quantities=QUANTITIES,
                invoices=invoices,
                rng=rng,
                today=today,
                start=master.start,
                actor=master.actor,
                log=self.stdout.write,
            ).run()
        self.bulk_period = (master.start, today)

    def _report_bulk(self, elapsed: float) -> None:
        r = self.bulk_result
        rows = r.customers + r.orders * 2 + r.lines * 2 + r.payments + r.allocations
        start, end = self.bulk_period
        out = self.stdout.write
        out(
            self.style.SUCCESS(
                f"Seeded the large history in {elapsed:.1f} s ({start} to {end}, ~{rows / elapsed:,.0f} rows/s):"
            )
        )
        out(f"  {r.customers} customers, {r.orders} orders, {r.invoices} invoices with {r.lines} lines")
        out("  invoices: " + ", ".join(f"{n} {s.replace('_', ' ')}" for s, n in sorted(r.statuses.items())))
        out(f"  {r.payments} payments, {r.allocations} allocations")
        out("  No PDFs were rendered for the bulk history: an administrator can request one from the admin.")
        self._login_hint()

    def _demo_user(self):
        user_model = get_user_model()
        user = user_model.objects.filter(username=DEMO_USERNAME).first()
        if user is None:
            user = user_model.objects.create_superuser(
                username=DEMO_USERNAME,
                email="demo@otc.example",
                password=DEMO_PASSWORD,
                first_name="Demo",
                last_name="User",
            )
        return user

    def _report(self, seeder: Seeder, elapsed: float) -> None:
        orders = dict(Order.objects.values_list("status").annotate(n=Count("id")).order_by())
        invoices = dict(Invoice.objects.values_list("status").annotate(n=Count("id")).order_by())
        today = timezone.localdate()
        overdue = Invoice.objects.filter(
            status__in=[InvoiceStatus.ISSUED, InvoiceStatus.PARTIALLY_PAID], due_date__lt=today
        ).count()
        credit = sum(1 for p in Payment.objects.all() if p.unallocated_amount > 0)
        out = self.stdout.write
        out(self.style.SUCCESS(f"Seeded the demo company in {elapsed:.1f} s ({seeder.start} to {seeder.today}):"))
        out(
            f"  {TaxRate.objects.count()} tax rates, {PaymentTerms.objects.count()} payment terms, "
            f"{Customer.objects.count()} customers ({Customer.objects.filter(on_hold=True).count()} on hold), "
            f"{Product.objects.count()} products"
        )
        out(f"  {sum(orders.values())} orders: " + ", ".join(f"{n} {s}" for s, n in sorted(orders.items())))
        out(
            f"  {sum(invoices.values())} invoices: "
            + ", ".join(f"{n} {s.replace('_', ' ')}" for s, n in sorted(invoices.items()))
            + f"; {overdue} overdue"
        )
        out(
            f"  {Payment.objects.count()} payments, {Allocation.objects.count()} allocations, "
            f"{credit} with unallocated credit"
        )
        penalty_invoices = Invoice.objects.filter(kind=InvoiceKind.PENALTY)
        out(
            f"  {penalty_invoices.count()} late-payment penalty invoices "
            f"({penalty_invoices.aggregate(t=Sum('gross_total'))['t'] or 0} in interest and fees)"
        )
        out(f"  {seeder.queued_pdfs} invoice PDFs queued for the worker (rendered in the background).")
        self._login_hint()

    def _login_hint(self) -> None:
        if get_user_model().objects.filter(username=DEMO_USERNAME).exists():
            self.stdout.write(f"Demo login: {DEMO_USERNAME} / {DEMO_PASSWORD}")
