"""Bank statements: reading CSV and CAMT.053 files, matching their lines to invoices, posting the
matches as payments, and the queue of lines a person matches or ignores.

A statement is parsed and stored whole at upload, in one transaction (a bad file stores nothing,
the same file twice creates nothing new). Its lines are then matched in bounded batches by
`statement_match`: the rows each batch needs (its lines, the open invoices and the customers) are
read once per run, the batch is posted with bulk inserts and updates under row locks, and the
statement's progress is saved after each batch. Large files run this on a worker
(`payments.tasks.bank_statement_match`); a second worker on the same statement skips the lines the
first one holds locked and finds nothing left to do."""

import csv
import hashlib
import io
import re
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta
from decimal import Decimal, InvalidOperation

from django.conf import settings
from django.contrib.contenttypes.models import ContentType
from django.db import IntegrityError, connection, transaction
from django.db.models import Count, Exists, F, OuterRef, Q
from django.utils import timezone

from billing.bulk import insert_rows, reserve_ids, update_rows
from billing.errors import Conflict, InvalidTransition, ValidationFailed
from billing.models import AuditEvent, Customer, PaymentMethod
from billing.services import actor_user, audit_record
from invoicing.models import OPEN_STATUSES, Invoice, InvoiceKind, InvoiceStatus

from .models import (
    QUEUE_STATUSES,
    Allocation,
    BankAccount,
    BankLine,
    BankLineStatus,
    BankStatement,
    BankStatementSource,
    BankStatementStatus,
    Payment,
    PaymentSource,
)
from .services import payment_record

MAX_BYTES = 20 * 1024 * 1024
INLINE_LINES = 500  # statements up to this size are matched in the request; larger ones on a worker
BATCH = 1000  # lines matched and posted per transaction
CENT = Decimal("0.01")


# --- Reading files -------------------------------------------------------------------------------


@dataclass
class ParsedLine:
    booking_date: date
    amount: Decimal
    currency: str
    is_credit: bool = True
    counterparty_name: str = ""
    counterparty_iban: str = ""
    remittance: str = ""
    structured_ref: str = ""
    end_to_end_id: str = ""
    entry_ref: str = ""


@dataclass
class ParsedStatement:
    source: str
    lines: list[ParsedLine]
    account_iban: str = ""
    statement_ref: str = ""


CSV_MAPPING_KEYS = {
    # column keys: a header name (matched without regard to case) or a 1-based column number
    "date": "Booking date column (required).",
    "amount": "Signed amount column; or leave it empty and give credit and debit columns.",
    "credit": "Credit (money in) column, when the bank splits amounts in two columns.",
    "debit": "Debit (money out) column.",
    "remittance": "Remittance text / purpose column.",
    "counterparty_name": "Payer name column.",
    "counterparty_iban": "Payer IBAN column.",
    "reference": "The bank's reference of the entry (makes re-imports of overlapping files safe).",
    "end_to_end_id": "End-to-end id column.",
    "currency": "Currency column; the account's currency when empty.",
    # how to read them
    "decimal_separator": "'.' or ','.",
    "date_format": "strftime format, e.g. %Y-%m-%d or %d.%m.%Y.",
    "delimiter": "',' ';' or 'tab'.",
    "header_rows": "Rows before the first entry; the last of them names the columns.",
}
CSV_COLUMNS = [k for k in CSV_MAPPING_KEYS if k not in ("decimal_separator", "date_format", "delimiter", "header_rows")]
CSV_DEFAULTS = {"decimal_separator": ".", "date_format": "%Y-%m-%d", "delimiter": ",", "header_rows": 1}


def normalise_iban(value: str) -> str:
    return re.sub(r"\s+", "", value or "").upper()


def _file_error(message: str, errors: list[str] | None = None):
    return ValidationFailed(message, code="bad_file", details={"file": errors or [message]})


def _decode(raw: bytes) -> str:
    try:
        return raw.decode("utf-8-sig")
    except UnicodeDecodeError:
        return raw.decode("cp1252", errors="replace")


def parse_amount(text: str, decimal_separator: str = ".") -> Decimal:
    """'1.234,56' with ',' as decimal separator, '-1,234.56' with '.': thousands separators and
    spaces are dropped. Raises ValueError for anything that is not an amount in cents."""
    value = (text or "").strip().replace("\u00a0", "").replace(" ", "").replace("'", "")
    thousands, decimal = (".", ",") if decimal_separator == "," else (",", ".")
    value = value.replace(thousands, "").replace(decimal, ".")
    if value.endswith("-"):  # some banks write 12.00-
        value = "-" + value[:-1]
    try:
        amount = Decimal(value)
    except InvalidOperation:
        raise ValueError(f"{text!r} is not an amount") from None
    if not amount.is_finite() or amount != amount.quantize(CENT):
        raise ValueError(f"{text!r} is not an amount in cents")
    return amount.quantize(CENT)


def _column_index(spec, header: list[str] | None) -> int | None:
    spec = str(spec or "").strip()
    if not spec:
        return None
    if spec.isdigit():
        return int(spec) - 1
    if header is None:
        raise _file_error(f"The mapping names column {spec!r}, but the file has no header row.")
    names = [h.strip().lower() for h in header]
    if spec.lower() not in names:
        raise _file_error(f"Column {spec!r} of the mapping is not in the file's header ({', '.join(header)}).")
    return names.index(spec.lower())


def parse_csv(raw: bytes, mapping: dict, currency: str) -> ParsedStatement:
    """Read a CSV export by the account's column mapping. Every row is checked; any bad row
    refuses the whole file with the rows' errors."""
    m = {**CSV_DEFAULTS, **{k: v for k, v in (mapping or {}).items() if v not in (None, "")}}
    if not m.get("date") or not (m.get("amount") or m.get("credit") or m.get("debit")):
        raise _file_error("The account's CSV mapping needs a date column and an amount (or credit/debit) column.")
    delimiter = "\t" if m["delimiter"] in ("tab", "\\t") else str(m["delimiter"])[:1]
    try:
        header_rows = int(m["header_rows"])
    except (TypeError, ValueError):
        raise _file_error("header_rows in the mapping must be a number.") from None
    rows = list(csv.reader(io.StringIO(_decode(raw)), delimiter=delimiter))
    header = rows[header_rows - 1] if header_rows >= 1 and len(rows) >= header_rows else None
    cols = {key: _column_index(m.get(key), header) for key in CSV_COLUMNS}
    lines, errors = [], []
    for number, row in enumerate(rows[header_rows:], start=header_rows + 1):
        if not any(cell.strip() for cell in row):
            continue

        def cell(key, row=row):
            i = cols[key]
            return row[i].strip() if i is not None and i < len(row) else ""

        try:
            booking = datetime.strptime(cell("date"), m["date_format"]).date()
        except ValueError:
            errors.append(f"Row {number}: date {cell('date')!r} does not follow {m['date_format']}.")
            continue
        try:
            if cols["amount"] is not None:
                amount = parse_amount(cell("amount"), m["decimal_separator"])
            else:
                credit = parse_amount(cell("credit") or "0", m["decimal_separator"])
                debit = parse_amount(cell("debit") or "0", m["decimal_separator"])
                amount = abs(credit) - abs(debit)
        except ValueError as e:
            errors.append(f"Row {number}: {e}.")
            continue
        if amount == 0:
            errors.append(f"Row {number}: the amount is zero.")
            continue
        lines.append(
            ParsedLine(
                booking_date=booking,
                amount=abs(amount),
                is_credit=amount > 0,
                currency=(cell("currency") or currency).upper(),
                counterparty_name=cell("counterparty_name")[:140],
                counterparty_iban=normalise_iban(cell("counterparty_iban"))[:34],
                remittance=cell("remittance"),
                end_to_end_id=cell("end_to_end_id")[:100],
                entry_ref=cell("reference")[:90],
            )
        )
        if len(errors) >= 20:
            break
    if errors:
        raise _file_error(f"The file has {len(errors)} bad row(s); nothing was imported.", errors)
    if not lines:
        raise _file_error("The file has no entries.")
    return ParsedStatement(source=BankStatementSource.CSV, lines=lines)


def _text(node, path: str) -> str:
    if node is None:
        return ""
    found = node.find(path)
    return (found.text or "").strip() if found is not None and found.text else ""


def parse_camt053(raw: bytes) -> ParsedStatement:
    """Read a CAMT.053 (ISO 20022 bank-to-customer statement), any version: one line per entry,
    or per transaction when an entry books several. Only credits (CRDT) are receipts; debits are
    kept as ignored lines."""
    from lxml import etree

    parser = etree.XMLParser(resolve_entities=False, no_network=True, huge_tree=False, remove_comments=True)
    try:
        root = etree.fromstring(raw, parser)
    except etree.XMLSyntaxError as e:
        raise _file_error(f"The file is not well-formed XML: {e}.") from None
    if etree.QName(root).localname != "Document" or root.find("{*}BkToCstmrStmt") is None:
        raise _file_error("The file is XML but not a CAMT.053 statement (no Document/BkToCstmrStmt).")
    stmts = root.findall("{*}BkToCstmrStmt/{*}Stmt")
    if len(stmts) != 1:
        raise _file_error(f"The file holds {len(stmts)} statements; import one statement per file.")
    stmt = stmts[0]
    lines, errors = [], []
    for n, entry in enumerate(stmt.iterfind("{*}Ntry"), start=1):
        status = _text(entry, "{*}Sts/{*}Cd") or _text(entry, "{*}Sts")
        if status and status != "BOOK":
            continue  # pending or information-only entries are not booked money
        indicator = _text(entry, "{*}CdtDbtInd")
        booking = _text(entry, "{*}BookgDt/{*}Dt") or _text(entry, "{*}BookgDt/{*}DtTm")[:10]
        entry_ref = _text(entry, "{*}AcctSvcrRef") or _text(entry, "{*}NtryRef")
        amt = entry.find("{*}Amt")
        txs = entry.findall("{*}NtryDtls/{*}TxDtls")
        parts = txs if len(txs) > 1 else [txs[0] if txs else None]
        for t, tx in enumerate(parts, start=1):
            where = f"Entry {n}" + (f", transaction {t}" if len(parts) > 1 else "")
            tx_amt = None
            if tx is not None and len(parts) > 1:
                tx_amt = tx.find("{*}Amt")
                if tx_amt is None:
                    tx_amt = tx.find("{*}AmtDtls/{*}TxAmt/{*}Amt")
            node = tx_amt if tx_amt is not None else amt
            if node is None or indicator not in ("CRDT", "DBIT"):
                errors.append(f"{where}: no amount or credit/debit indicator.")
                continue
            try:
                amount = parse_amount(node.text or "")
                booked = date.fromisoformat(booking)
            except ValueError:
                errors.append(f"{where}: amount {node.text!r} or booking date {booking!r} is not valid.")
                continue
            currency = (node.get("Ccy") or "").upper()
            if amount <= 0 or not re.fullmatch(r"[A-Z]{3}", currency):
                errors.append(f"{where}: the amount must be positive with a currency (Amt/@Ccy).")
                continue
            ustrd = [u.text.strip() for u in tx.iterfind("{*}RmtInf/{*}Ustrd") if u.text] if tx is not None else []
            strd = _text(tx, "{*}RmtInf/{*}Strd/{*}CdtrRefInf/{*}Ref")
            parties = tx.find("{*}RltdPties") if tx is not None else None
            name = _text(parties, "{*}Dbtr/{*}Nm") or _text(parties, "{*}Dbtr/{*}Pty/{*}Nm")
            iban = _text(parties, "{*}DbtrAcct/{*}Id/{*}IBAN")
            tx_ref = _text(tx, "{*}Refs/{*}AcctSvcrRef")
            ref = tx_ref or (f"{entry_ref}/{t}" if entry_ref and len(parts) > 1 else entry_ref)
            lines.append(
                ParsedLine(
                    booking_date=booked,
                    amount=amount,
                    currency=currency,
                    is_credit=indicator == "CRDT",
                    counterparty_name=name[:140],
                    counterparty_iban=normalise_iban(iban)[:34],
                    remittance=" ".join(ustrd),
                    structured_ref=strd[:100],
                    end_to_end_id=_text(tx, "{*}Refs/{*}EndToEndId")[:100],
                    entry_ref=ref[:90],
                )
            )
        if len(errors) >= 20:
            break
    if errors:
        raise _file_error(f"The statement has {len(errors)} bad entr(y/ies); nothing was imported.", errors)
    if not lines:
        raise _file_error("The statement has no booked entries.")
    return ParsedStatement(
        source=BankStatementSource.CAMT053,
        lines=lines,
        account_iban=normalise_iban(_text(stmt, "{*}Acct/{*}Id/{*}IBAN")),
        statement_ref=_text(stmt, "{*}Id")[:100],
    )


LINE_INSERT_FIELDS = [
    "account_id",
    "statement_id",
    "line_no",
    "entry_ref",
    "booking_date",
    "is_credit",
    "amount",
    "currency",
    "counterparty_name",
    "counterparty_iban",
    "remittance",
    "structured_ref",
    "end_to_end_id",
    "status",
    "reason",
    "suggested_invoice_ids",
]


def parse_statement(*, account: BankAccount, raw: bytes) -> ParsedStatement:
    """CAMT.053 when the file is XML, else CSV by the account's mapping."""
    if not raw.strip():
        raise _file_error("The file is empty.")
    if len(raw) > MAX_BYTES:
        raise _file_error(f"The file is larger than {MAX_BYTES // (1024 * 1024)} MB; split it.")
    if raw.lstrip()[:5] in (b"<?xml", b"<Docu") or raw.lstrip().startswith(b"\xef\xbb\xbf<"):
        parsed = parse_camt053(raw)
        if parsed.account_iban and parsed.account_iban != account.iban:
            raise _file_error(f"The statement is for account {parsed.account_iban}, not {account} ({account.iban}).")
    else:
        if not account.csv_mapping:
            raise _file_error(f"{account} has no CSV column mapping yet; set one on the account first.")
        parsed = parse_csv(raw, account.csv_mapping, account.currency)
    return parsed


def _entry_refs(lines: list[ParsedLine]) -> list[str]:
    """The bank's reference where it gives one; else a digest of the entry, numbered when the same
    entry occurs several times in the file, so that re-importing an overlapping file adds only new entries."""
    refs, seen = [], {}
    for line in lines:
        if line.entry_ref:
            key = f"ref:{line.entry_ref}"
        else:
            text = "|".join(
                [
                    line.booking_date.isoformat(),
                    "C" if line.is_credit else "D",
                    str(line.amount),
                    line.currency,
                    line.counterparty_iban,
                    line.counterparty_name,
                    line.remittance,
                    line.structured_ref,
                    line.end_to_end_id,
                ]
            )
            key = "sha:" + hashlib.sha256(text.encode()).hexdigest()[:40]
        seen[key] = seen.get(key, 0) + 1
        refs.append(key if seen[key] == 1 else f"{key}#{seen[key]}")
    return refs


def _known_refs(account: BankAccount, refs: list[str]) -> set[str]:
    """Which of `refs` the account has already; on PostgreSQL with one array parameter rather
    than an IN list of ten thousand."""
    if connection.vendor != "postgresql":
        return set(BankLine.objects.filter(account=account, entry_ref__in=refs).values_list("entry_ref", flat=True))
    table = BankLine._meta.db_table
    with connection.cursor() as cursor:
        cursor.execute(
            f'SELECT entry_ref FROM "{table}" WHERE account_id = %s AND entry_ref = ANY(%s::varchar[])',  # noqa: S608
            [account.pk, refs],
        )
        return {row[0] for row in cursor.fetchall()}


def bank_statement_import(*, account: BankAccount, filename: str, raw: bytes, actor=None) -> tuple[BankStatement, bool]:
    """Store a statement file and its lines (debits as ignored lines), in one transaction: a bad
    file raises ValidationFailed and stores nothing. The same file again returns the statement it
    was imported as, with False; entries already imported by another file of the account are
    counted and skipped. Matching is enqueued on commit; callers may also match a small statement at
    once (`statement_match`, INLINE_LINES)."""
    digest = hashlib.sha256(raw).hexdigest()
    existing = BankStatement.objects.filter(account=account, file_sha256=digest).first()
    if existing is not None:
        return existing, False
    parsed = parse_statement(account=account, raw=raw)
    refs = _entry_refs(parsed.lines)
    try:
        with transaction.atomic():
            account = BankAccount.objects.select_for_update().get(pk=account.pk)
            known = _known_refs(account, refs)
            fresh = [(line, ref) for line, ref in zip(parsed.lines, refs, strict=True) if ref not in known]
            debits = sum(1 for line, _ in fresh if not line.is_credit)
            statement = BankStatement.objects.create(
                account=account,
                source=parsed.source,
                filename=filename[:255],
                file_sha256=digest,
                statement_ref=parsed.statement_ref,
                total_lines=len(fresh),
                processed_lines=debits,
                duplicate_lines=len(parsed.lines) - len(fresh),
                created_by=actor_user(actor),
            )
            rows = [
                (
                    account.pk,
                    statement.pk,
                    no,
                    ref,
                    line.booking_date,
                    line.is_credit,
                    line.amount,
                    line.currency,
                    line.counterparty_name,
                    line.counterparty_iban,
                    line.remittance,
                    line.structured_ref,
                    line.end_to_end_id,
                    BankLineStatus.NEW.value if line.is_credit else BankLineStatus.IGNORED.value,
                    "" if line.is_credit else "Debit: money out, not a receipt.",
                    [],
                )
                for no, (line, ref) in enumerate(fresh, start=1)
            ]
            insert_rows(BankLine, LINE_INSERT_FIELDS, rows)
            if statement.processed_lines == statement.total_lines:
                statement.status = BankStatementStatus.DONE
                statement.finished_at = timezone.now()
                statement.save(update_fields=["status", "finished_at"])
            audit_record(
                actor=actor,
                action="bank_statement.imported",
                obj=statement,
                changes={"lines": len(rows), "duplicates": statement.duplicate_lines, "sha256": digest},
            )
            if statement.status == BankStatementStatus.MATCHING:
                # Always queued, also when the caller matches a small statement at once: should the
                # request fail half-way, a worker finishes (two runs at once share the lines out).
                from billing.jobs import enqueue_on_commit

                from .tasks import bank_statement_match

                enqueue_on_commit(bank_statement_match, statement.pk, getattr(settings, "OTC_BANK_BATCH_SIZE", BATCH))
    except IntegrityError:
        # The same file (or an entry of it) was stored meanwhile by a concurrent upload.
        existing = BankStatement.objects.filter(account=account, file_sha256=digest).first()
        if existing is not None:
            return existing, False
        raise Conflict(
            "Another statement with some of these entries was imported at the same time; try again."
        ) from None
    return statement, True


# --- Matching ------------------------------------------------------------------------------------

INVOICE_NUMBER = re.compile(r"\b(INV|CN|PEN)[\s\-_/]?(\d{4})[\s\-_/]?(\d{6})\b", re.IGNORECASE)
RF_REFERENCE = re.compile(r"\bRF(\d{2})([0-9A-Z]{1,21})\b")


def find_invoice_numbers(text: str) -> list[str]:
    """Invoice numbers written in a remittance text, normalised to how they are issued
    (`INV-2026-000123`), in order of appearance and without repeats. Tolerates spaces, slashes or
    no separator (`INV2026000123`) and an RF creditor reference built on an invoice number."""
    found: list[str] = []
    upper = (text or "").upper()
    for match in RF_REFERENCE.finditer(upper.replace(" ", "")):
        if _rf_valid(match.group(0)):
            upper += " " + match.group(2)
    for match in INVOICE_NUMBER.finditer(upper):
        number = f"{match.group(1).upper()}-{match.group(2)}-{match.group(3)}"
        if number not in found:
            found.append(number)
    return found


def _rf_valid(reference: str) -> bool:
    """ISO 11649: move RFxx to the end, letters to numbers, mod 97 == 1."""
    moved = reference[4:] + reference[:4]
    digits = "".join(str(int(ch, 36)) for ch in moved)
    return int(digits) % 97 == 1


def rf_reference(body: str) -> str:
    """The ISO 11649 creditor reference for `body` (e.g. an invoice number without dashes)."""
    body = re.sub(r"[^0-9A-Z]", "", body.upper())
    digits = "".join(str(int(ch, 36)) for ch in body + "RF00")
    return f"RF{98 - int(digits) % 97:02d}{body}"


_LEGAL_FORMS = re.compile(
    r"\b(SA|SAS|SARL|GMBH|AG|LTD|LIMITED|INC|LLC|BV|NV|SPA|SRL|PLC|CO|CORP|KG|EURL|SE)\b", re.IGNORECASE
)


def normalise_name(name: str) -> str:
    """How a payer's name is compared with customer names: case, punctuation and legal forms aside."""
    text = re.sub(r"[^\w\s]", " ", (name or "").upper())
    text = _LEGAL_FORMS.sub(" ", text)
    return " ".join(text.split())


@dataclass
class OpenInvoice:
    id: int
    number: str
    customer_id: int
    currency: str
    balance: Decimal
    due_date: date | None
    paid: bool = False  # not open any more (paid, void, ...): named in a text, it cannot take money


@dataclass
class Payer:
    id: int
    name: str
    currency: str
    accepted_methods: set[str]


@dataclass
class MatchContext:
    """What matching needs, read once per run: open invoices by number and by customer, customers by
    IBAN and by name. Balances are lowered in memory as lines post, so two lines of one run never
    both settle the same balance (posting re-checks under lock anyway)."""

    invoices: dict[str, OpenInvoice] = field(default_factory=dict)
    by_customer: dict[int, list[OpenInvoice]] = field(default_factory=dict)
    by_id: dict[int, OpenInvoice] = field(default_factory=dict)
    customers: dict[int, "Payer"] = field(default_factory=dict)
    by_iban: dict[str, list[int]] = field(default_factory=dict)
    by_name: dict[str, list[int]] = field(default_factory=dict)


def _load_context(numbers: set[str]) -> MatchContext:
    ctx = MatchContext()
    rows = Customer.objects.values_list(
        "id", "name", "legal_name", "iban", "currency", "payment_terms__accepted_methods"
    ).order_by("id")
    for pk, name, legal_name, iban, currency, methods in rows.iterator(chunk_size=5000):
        ctx.customers[pk] = Payer(pk, name, currency, set(methods or []))
        if iban:
            ctx.by_iban.setdefault(normalise_iban(iban), []).append(pk)
        for key in {normalise_name(name), normalise_name(legal_name)} - {""}:
            ctx.by_name.setdefault(key, []).append(pk)
    rows = (
        Invoice.objects.filter(status__in=OPEN_STATUSES)
        .exclude(kind=InvoiceKind.CREDIT_NOTE)
        .values_list("id", "number", "customer_id", "currency", "gross_total", "amount_paid", "due_date")
    )
    for pk, number, customer_id, currency, gross, paid, due in rows.iterator(chunk_size=5000):
        inv = OpenInvoice(pk, number, customer_id, currency, gross - paid, due)
        ctx.invoices[number] = ctx.by_id[pk] = inv
        ctx.by_customer.setdefault(customer_id, []).append(inv)
    # Numbers named in the texts that are not open: say so in the reason instead of "unknown".
    closed = numbers - set(ctx.invoices)
    if closed:
        for pk, number, customer_id, currency, due in Invoice.objects.filter(number__in=closed).values_list(
            "id", "number", "customer_id", "currency", "due_date"
        ):
            ctx.invoices[number] = ctx.by_id[pk] = OpenInvoice(
                pk, number, customer_id, currency, Decimal("0"), due, paid=True
            )
    for invoices in ctx.by_customer.values():
        invoices.sort(key=lambda i: (i.due_date or date.max, i.id))
    return ctx


@dataclass
class Decision:
    status: str
    reason: str
    customer_id: int | None = None
    invoice_ids: list[int] = field(default_factory=list)
    plan: list[tuple[int, Decimal]] = field(default_factory=list)  # posting: (invoice id, amount)


def _money(amount: Decimal) -> str:
    return f"{amount:,.2f}"


def _payer(line: BankLine, ctx: MatchContext) -> tuple[int | None, str]:
    """The one customer the line's IBAN or name points to, and how; (None, why) otherwise."""
    if line.counterparty_iban:
        ids = ctx.by_iban.get(normalise_iban(line.counterparty_iban), [])
        if len(ids) == 1:
            return ids[0], f"IBAN {line.counterparty_iban}"
        if len(ids) > 1:
            names = ", ".join(ctx.customers[i].name for i in ids[:3])
            return None, f"IBAN {line.counterparty_iban} belongs to {len(ids)} customers ({names})"
    name = normalise_name(line.counterparty_name)
    if name:
        ids = ctx.by_name.get(name, [])
        if len(ids) == 1:
            return ids[0], f"name {line.counterparty_name!r}"
        if len(ids) > 1:
            return None, f"name {line.counterparty_name!r} fits {len(ids)} customers"
    return None, ""


def decide(line: BankLine, ctx: MatchContext) -> Decision:
    """Match one credit line: invoice numbers in its texts with an amount that fits post; a payer
    recognised by IBAN or name becomes a suggestion with the reason; anything else is unmatched."""
    amount = line.amount
    numbers = find_invoice_numbers(f"{line.structured_ref} {line.remittance}")
    named = [ctx.invoices[n] for n in numbers if n in ctx.invoices]
    open_named = [i for i in named if not i.paid and i.currency == line.currency and i.balance > 0]
    if open_named:
        owners = {i.customer_id for i in open_named}
        if len(owners) > 1:
            return Decision(
                BankLineStatus.UNMATCHED,
                f"The text names invoices of {len(owners)} different customers: "
                + ", ".join(i.number for i in open_named)
                + ".",
                invoice_ids=[i.id for i in open_named],
            )
        customer_id = open_named[0].customer_id
        customer = ctx.customers[customer_id]
        total = sum((i.balance for i in open_named), Decimal("0"))
        numbers_text = ", ".join(i.number for i in open_named)
        if customer.currency != line.currency:
            return Decision(
                BankLineStatus.SUGGESTED,
                f"{customer.name} is billed in {customer.currency}, the line is in {line.currency}.",
                customer_id,
                [i.id for i in open_named],
            )
        if amount == total:
            how = "the balance of" if len(open_named) == 1 else "the balances of"
            return Decision(
                BankLineStatus.MATCHED,
                f"Amount {_money(amount)} is {how} {numbers_text}.",
                customer_id,
                [i.id for i in open_named],
                [(i.id, i.balance) for i in open_named],
            )
        if len(open_named) == 1 and amount < total:
            return Decision(
                BankLineStatus.MATCHED,
                f"Partial payment of {open_named[0].number}: {_money(amount)} of {_money(total)}.",
                customer_id,
                [open_named[0].id],
                [(open_named[0].id, amount)],
            )
        if amount < total:
            reason = (
                f"Amount {_money(amount)} is less than the {_money(total)} open on {numbers_text}: "
                "which ones does it pay?"
            )
        else:
            reason = f"Amount {_money(amount)} is more than the {_money(total)} open on {numbers_text}."
        return Decision(BankLineStatus.SUGGESTED, reason, customer_id, [i.id for i in open_named])
    closed_note = ""
    if named:
        closed_note = (
            " "
            + ", ".join(
                f"{i.number} is {'not open' if i.paid or i.balance <= 0 else 'in ' + i.currency}" for i in named
            )
            + "."
        )
    customer_id, how = _payer(line, ctx)
    if customer_id is None and len({i.customer_id for i in named}) == 1:
        customer_id, how = named[0].customer_id, "the invoice named in the text"
    if customer_id is None:
        reason = f"Payer not recognised: {how}." if how else "No open invoice number in the text; payer not known."
        return Decision(BankLineStatus.UNMATCHED, reason + closed_note)
    customer = ctx.customers[customer_id]
    open_invoices = [i for i in ctx.by_customer.get(customer_id, []) if i.balance > 0 and i.currency == line.currency]
    fits = [i for i in open_invoices if i.balance == amount]
    open_total = sum((i.balance for i in open_invoices), Decimal("0"))
    who = f"{customer.name} (recognised by {how})"
    if len(fits) == 1:
        reason = (
            f"Amount {_money(amount)} matches open invoice {fits[0].number} of {who}; no invoice number in the text."
        )
    elif fits:
        shown = ", ".join(i.number for i in fits[:5]) + (" …" if len(fits) > 5 else "")
        reason = f"Amount {_money(amount)} matches {len(fits)} open invoices of {who}: {shown}."
    elif open_invoices and amount == open_total:
        fits = open_invoices
        reason = f"Amount {_money(amount)} is the whole open balance of {who}: {len(fits)} invoices."
    elif open_invoices:
        reason = (
            f"No open invoice of {who} is {_money(amount)}; {len(open_invoices)} open, "
            f"{_money(open_total)} in all. Matching allocates oldest due first; the rest stays as credit."
        )
    else:
        reason = f"{who} has no open invoice; matching keeps the amount as credit."
    return Decision(BankLineStatus.SUGGESTED, reason + closed_note, customer_id, [i.id for i in fits[:20]])


def _close_orders(invoice_ids: list[int], actor) -> None:
    """Close the orders whose invoices are now all paid (invoicing does it per invoice when a
    single payment is allocated; here it is one query for the batch)."""
    if not invoice_ids:
        return
    from orders.models import Order, OrderStatus
    from orders.services import order_close

    unpaid = Invoice.objects.filter(lines__order_line__order=OuterRef("pk")).exclude(
        status__in=[InvoiceStatus.PAID, InvoiceStatus.VOID]
    )
    orders = (
        Order.objects.filter(lines__invoice_lines__invoice_id__in=invoice_ids, status=OrderStatus.INVOICED)
        .exclude(Exists(unpaid))
        .distinct()
        .order_by("pk")
    )
    for order in orders:
        order_close(order=order, actor=actor)


@dataclass
class LineRow:
    """The fields of a bank line that matching reads, without a model instance per line."""

    pk: int
    line_no: int
    statement_id: int
    entry_ref: str
    booking_date: date
    amount: Decimal
    currency: str
    counterparty_name: str
    counterparty_iban: str
    remittance: str
    structured_ref: str


LINE_ROW_FIELDS = [
    "pk",
    "line_no",
    "statement_id",
    "entry_ref",
    "booking_date",
    "amount",
    "currency",
    "counterparty_name",
    "counterparty_iban",
    "remittance",
    "structured_ref",
]


def _post_batch(lines: list[LineRow], decisions: dict[int, Decision], ctx: MatchContext, actor) -> dict[int, int]:
    """Post the batch's matched lines at once, inside the caller's transaction, with the lines
    already locked: lock the invoices by primary key, re-check every planned allocation against
    the balance under the lock (a line whose invoice changed meanwhile becomes a suggestion),
    then insert payments, allocations and audit rows and update the invoices, a statement each.
    Returns the payment id of each posted line."""
    posting = [line for line in lines if decisions[line.pk].status == BankLineStatus.MATCHED]
    if not posting:
        return {}
    invoice_ids = sorted({pk for line in posting for pk, _ in decisions[line.pk].plan})
    locked = {
        row[0]: list(row)
        for row in Invoice.objects.select_for_update()
        .filter(pk__in=invoice_ids)
        .order_by("pk")
        .values_list("pk", "number", "status", "gross_total", "amount_paid")
    }
    now = timezone.now()
    user_id = actor_user(actor).pk if actor_user(actor) else None
    payments, plans, ok_lines = [], [], []
    for line in posting:
        decision = decisions[line.pk]
        plan = [(locked.get(pk), amount) for pk, amount in decision.plan]
        if any(inv is None or inv[2] not in OPEN_STATUSES or amount > inv[3] - inv[4] for inv, amount in plan):
            decision.status = BankLineStatus.SUGGESTED
            decision.reason = "The invoice's balance changed before the line could post; check and match it. " + (
                decision.reason
            )
            decision.plan = []
            continue
        for inv, amount in plan:
            inv[4] += amount
        customer = ctx.customers[decision.customer_id]
        payments.append(
            (
                f"BANKLINE-{line.pk}",  # unique until the id-based number is set below
                customer.id,
                PaymentMethod.BANK_TRANSFER.value,
                PaymentMethod.BANK_TRANSFER in customer.accepted_methods,
                line.amount,
                line.currency,
                line.booking_date,
                _payment_reference(line),
                PaymentSource.BANK_IMPORT.value,
                sum((a for _, a in plan), Decimal("0")),
                Decimal("0"),
                user_id,
                now,
            )
        )
        plans.append(plan)
        ok_lines.append(line)
    if not payments:
        return {}
    fields = ["number", "customer_id", "method", "method_accepted", "amount", "currency", "received_on"]
    fields += ["reference", "source", "allocated_amount", "refunded_amount", "created_by_id", "created_at"]
    reserved = reserve_ids(Payment, len(payments))
    if reserved:  # the number is known before the insert: PAY- and the id, as payment_record gives it
        payments = [(pk, f"PAY-{pk:06d}", *row[1:]) for pk, row in zip(reserved, payments, strict=True)]
        payment_ids = insert_rows(Payment, ["id", *fields], payments)
        numbers = [row[1] for row in payments]
    else:
        payment_ids = insert_rows(Payment, fields, payments)
        numbers = [f"PAY-{pk:06d}" for pk in payment_ids]
        update_rows(Payment, ["number"], list(zip(payment_ids, numbers, strict=True)))
    insert_rows(
        Allocation,
        ["payment_id", "invoice_id", "amount", "created_by_id", "created_at"],
        [
            (pid, inv[0], amount, user_id, now)
            for pid, plan in zip(payment_ids, plans, strict=True)
            for inv, amount in plan
        ],
    )
    touched = {inv[0]: inv for plan in plans for inv, _ in plan}
    paid_now = []
    invoice_rows = []
    for pk, _number, _status, gross, paid in touched.values():
        # The rule of invoicing.services.invoice_set_amount_paid: the status follows the balance.
        status = InvoiceStatus.PAID.value if paid == gross else InvoiceStatus.PARTIALLY_PAID.value
        if status == InvoiceStatus.PAID:
            paid_now.append(pk)
        invoice_rows.append((pk, paid, status, now))
    update_rows(Invoice, ["amount_paid", "status", "updated_at"], invoice_rows)
    payment_type = ContentType.objects.get_for_model(Payment).pk
    audits = []
    for pid, number, plan, line in zip(payment_ids, numbers, plans, ok_lines, strict=True):
        amount, accepted = (
            str(line.amount),
            PaymentMethod.BANK_TRANSFER in ctx.customers[decisions[line.pk].customer_id].accepted_methods,
        )
        recorded = {
            "amount": amount,
            "method": PaymentMethod.BANK_TRANSFER.value,
            "method_accepted": accepted,
            "bank_line": f"{line.statement_id}/{line.line_no}",
        }
        audits.append((user_id, "payment.recorded", payment_type, pid, number, recorded, now))
        audits.append(
            (user_id, "payment.allocated", payment_type, pid, number, {inv[1]: str(a) for inv, a in plan}, now)
        )
    fields = ["actor_id", "action", "content_type_id", "object_id", "object_repr", "changes", "created_at"]
    insert_rows(AuditEvent, fields, audits)
    _close_orders(sorted(paid_now), actor)
    return {line.pk: pid for line, pid in zip(ok_lines, payment_ids, strict=True)}


def _payment_reference(line) -> str:
    return " ".join(x for x in (line.structured_ref, line.remittance) if x)[:140] or line.entry_ref[:140]


def statement_match(
    *, statement_id: int, actor=None, batch: int = BATCH, max_batches: int | None = None
) -> BankStatement | None:
    """Match the statement's new lines in batches of `batch`, each in its own transaction: lock
    the lines (skipping any another worker holds), decide each, post the matched ones, save the
    lines and the statement's progress. Safe to run twice or on two workers at once: a line is only
    decided while it is new and locked, and posts one payment at most (one-to-one)."""
    statement = BankStatement.objects.filter(pk=statement_id).first()
    if statement is None:
        return None
    texts = BankLine.objects.filter(statement_id=statement_id, status=BankLineStatus.NEW).values_list(
        "structured_ref", "remittance"
    )
    numbers = {n for s, r in texts.iterator(chunk_size=5000) for n in find_invoice_numbers(f"{s} {r}")}
    ctx = _load_context(numbers)
    done_batches = 0
    while max_batches is None or done_batches < max_batches:
        with transaction.atomic():
            lines = [
                LineRow(*row)
                for row in BankLine.objects.select_for_update(skip_locked=True)
                .filter(statement_id=statement_id, status=BankLineStatus.NEW)
                .order_by("line_no")
                .values_list(*LINE_ROW_FIELDS)[:batch]
            ]
            if not lines:
                break
            decisions = {}
            for line in lines:
                decisions[line.pk] = d = decide(line, ctx)
                for pk, amount in d.plan:  # the next lines see what this one settles
                    ctx.by_id[pk].balance -= amount
            posted = _post_batch(lines, decisions, ctx, actor)
            now = timezone.now()
            rows = []
            for line in lines:
                d = decisions[line.pk]
                matched = d.status == BankLineStatus.MATCHED
                rows.append(
                    (
                        line.pk,
                        d.status.value if hasattr(d.status, "value") else d.status,
                        d.reason[:500],
                        d.customer_id,
                        [] if matched else d.invoice_ids,
                        posted.get(line.pk),
                        now if matched else None,
                    )
                )
            fields = ["status", "reason", "customer_id", "suggested_invoice_ids", "payment_id", "matched_at"]
            update_rows(BankLine, fields, rows)
            BankStatement.objects.filter(pk=statement_id).update(processed_lines=F("processed_lines") + len(lines))
        done_batches += 1
    with transaction.atomic():
        statement = BankStatement.objects.select_for_update().get(pk=statement_id)
        left = BankLine.objects.filter(statement_id=statement_id, status=BankLineStatus.NEW).exists()
        if not left and statement.status != BankStatementStatus.DONE:
            statement.status = BankStatementStatus.DONE
            statement.finished_at = timezone.now()
            statement.save(update_fields=["status", "finished_at"])
            counts = statement_counts(statement)
            audit_record(actor=actor, action="bank_statement.matched", obj=statement, changes=counts)
    return statement


def statements_stalled(*, minutes: int = 10):
    """Statements still matching `minutes` after their import (the sweeper queues them again)."""
    cutoff = timezone.now() - timedelta(minutes=minutes)
    return BankStatement.objects.filter(status=BankStatementStatus.MATCHING, created_at__lt=cutoff).order_by("pk")


def statement_counts(statement: BankStatement) -> dict[str, int]:
    """Lines per status, in one query."""
    agg = BankLine.objects.filter(statement=statement).aggregate(
        **{s.value: Count("pk", filter=Q(status=s.value)) for s in BankLineStatus}
    )
    return agg


# --- The queue: people match and ignore ---------------------------------------------------------


def _lock_queued(line: BankLine) -> BankLine:
    line = BankLine.objects.select_for_update().select_related("statement").get(pk=line.pk)
    if line.status not in QUEUE_STATUSES:
        raise InvalidTransition(
            f"Line {line.statement_id}/{line.line_no} is {line.get_status_display().lower()}; "
            "only suggested or unmatched lines can be matched or ignored."
        )
    return line


def bank_line_match(
    *, line: BankLine, customer: Customer, invoices: list[Invoice] | None = None, actor=None
) -> BankLine:
    """Post a queued line as a payment of `customer`: to `invoices` in the order given (each up to
    its balance, the rest stays as credit) or, without invoices, to their open invoices oldest due
    first. Remembers the payer's IBAN on a customer that has none. Audited."""
    with transaction.atomic():
        line = _lock_queued(line)
        allocations = None
        if invoices:
            wrong = [i.number or str(i.pk) for i in invoices if i.customer_id != customer.pk]
            if wrong:
                raise ValidationFailed(
                    f"{', '.join(wrong)} belong(s) to another customer than {customer}.",
                    details={"invoices": [f"Not an invoice of {customer}."]},
                )
            left, allocations = line.amount, []
            for invoice in Invoice.objects.filter(pk__in=[i.pk for i in invoices]).order_by("due_date", "pk"):
                take = min(left, invoice.balance)
                if take > 0 and invoice.status in OPEN_STATUSES:
                    allocations.append({"invoice": invoice, "amount": take})
                    left -= take
            allocations = allocations or None
        payment = payment_record(
            customer=customer,
            method=PaymentMethod.BANK_TRANSFER,
            amount=line.amount,
            currency=line.currency,
            received_on=line.booking_date,
            reference=_payment_reference(line),
            source=PaymentSource.BANK_IMPORT,
            allocations=allocations,
            auto_allocate=invoices is None,
            actor=actor,
        )
        previous = line.status
        line.status = BankLineStatus.MATCHED
        line.payment = payment
        line.customer = customer
        line.matched_by = actor_user(actor)
        line.matched_at = timezone.now()
        line.save(update_fields=["status", "payment", "customer", "matched_by", "matched_at"])
        audit_record(
            actor=actor,
            action="bank_line.matched",
            obj=line,
            changes={
                "status": [previous, line.status],
                "customer": str(customer),
                "payment": payment.number,
                "invoices": [a.invoice.number for a in payment.allocations.select_related("invoice")],
            },
        )
        iban = normalise_iban(line.counterparty_iban)
        if iban and Customer.objects.filter(pk=customer.pk, iban="").update(iban=iban):
            audit_record(actor=actor, action="customer.updated", obj=customer, changes={"iban": ["", iban]})
    return line


def bank_line_match_suggestion(*, line: BankLine, actor=None) -> BankLine:
    """One click: match a suggested line to what was suggested (the customer and its invoices)."""
    if line.customer_id is None:
        raise ValidationFailed(
            "This line has no suggestion; choose a customer.", details={"customer": ["Choose a customer."]}
        )
    invoices = list(Invoice.objects.filter(pk__in=line.suggested_invoice_ids or []))
    # Several invoices of the same amount: the one-click match takes the oldest due of them.
    if invoices and len(invoices) > 1 and all(i.balance == line.amount for i in invoices):
        invoices = sorted(invoices, key=lambda i: (i.due_date or date.max, i.pk))[:1]
    return bank_line_match(line=line, customer=line.customer, invoices=invoices or None, actor=actor)


def bank_line_ignore(*, line: BankLine, reason: str, actor=None) -> BankLine:
    """Take a queued line out of the queue without posting (a refund from a supplier, an internal
    transfer ...), with the reason. Audited."""
    reason = (reason or "").strip()
    if not reason:
        raise ValidationFailed("Say why the line is ignored.", details={"reason": ["Say why the line is ignored."]})
    with transaction.atomic():
        line = _lock_queued(line)
        previous = line.status
        line.status = BankLineStatus.IGNORED
        line.reason = f"Ignored: {reason}"[:500]
        line.matched_by = actor_user(actor)
        line.matched_at = timezone.now()
        line.save(update_fields=["status", "reason", "matched_by", "matched_at"])
        audit_record(
            actor=actor,
            action="bank_line.ignored",
            obj=line,
            changes={"status": [previous, line.status], "reason": reason},
        )
    return line


# --- Accounts ------------------------------------------------------------------------------------


def bank_account_save(
    *, account: BankAccount | None = None, name: str, iban: str, currency: str, csv_mapping: dict, actor=None
) -> BankAccount:
    """Create an account, or change one (name, IBAN, currency, CSV mapping). Audited."""
    iban = normalise_iban(iban)
    with transaction.atomic():
        if BankAccount.objects.filter(iban=iban).exclude(pk=account.pk if account else None).exists():
            raise ValidationFailed(
                f"An account with IBAN {iban} exists already.", details={"iban": ["This IBAN has an account."]}
            )
        if account is None:
            account = BankAccount.objects.create(name=name, iban=iban, currency=currency, csv_mapping=csv_mapping)
            audit_record(actor=actor, action="bank_account.created", obj=account, changes={"iban": iban})
            return account
        account = BankAccount.objects.select_for_update().get(pk=account.pk)
        changes = {}
        for attr, value in (("name", name), ("iban", iban), ("currency", currency), ("csv_mapping", csv_mapping)):
            if getattr(account, attr) != value:
                changes[attr] = [getattr(account, attr), value]
                setattr(account, attr, value)
        if changes:
            account.save(update_fields=list(changes))
            audit_record(actor=actor, action="bank_account.updated", obj=account, changes=changes)
    return account
