"""Set-based writes of many rows at once, for the bulk paths (bank posting, penalty runs, billing
runs). On PostgreSQL one `INSERT ... SELECT FROM unnest(arrays)` or `UPDATE ... FROM unnest(arrays)`
per 5,000 rows, without a model instance per row or preparing each value one by one: that is most
of what bulk_create and bulk_update cost for thousands of rows (bulk_update builds a CASE per field
over every row). Elsewhere (the embedded SQLite default) Django's bulk_create and bulk_update.
Values go in as Python values of the field's type; JSON is encoded here, a file field's name used.
"""

import json

from django.core.serializers.json import DjangoJSONEncoder
from django.db import connection, models
from django.utils import timezone

CHUNK = 5000


def _db_cast(f) -> str:
    return f.db_type(connection) if not f.is_relation else f.target_field.rel_db_type(connection)


def _db_value(f, value):
    if isinstance(f, models.JSONField):
        return json.dumps(value, cls=DjangoJSONEncoder)
    if isinstance(f, models.FileField):
        return getattr(value, "name", value) or ""
    return value


def insert_rows(model, fields: list[str], rows: list[tuple]) -> list[int]:
    """Insert many rows, given as tuples in the order of `fields` (attribute names: `customer_id`),
    and return their ids in order. On PostgreSQL one `INSERT ... SELECT FROM unnest(arrays)` per
    CHUNK rows, without building a model instance per row (that, and preparing every value one
    by one, is most of bulk_create's cost for thousands of rows); elsewhere bulk_create."""
    if not rows:
        return []
    meta = model._meta
    # Fields the caller does not set get what bulk_create would give them: the model's default
    # ("" for a text field without one), the time for auto_now(_add); nullable ones stay NULL.
    defaulted = [
        f
        for f in meta.concrete_fields
        if not f.primary_key and f.attname not in fields and (f.has_default() or not f.null)
    ]
    if defaulted:
        now = timezone.now()
        fields = [*fields, *(f.attname for f in defaulted)]
        extra = tuple(
            now if getattr(f, "auto_now", False) or getattr(f, "auto_now_add", False) else f.get_default()
            for f in defaulted
        )
        rows = [(*row, *extra) for row in rows]
    cols = [meta.get_field(name) for name in fields]
    if connection.vendor != "postgresql":
        objs = model.objects.bulk_create(
            [model(**{f.attname: v for f, v in zip(cols, row, strict=True)}) for row in rows], batch_size=500
        )
        return [o.pk for o in objs]
    names = ", ".join(f'"{f.column}"' for f in cols)
    casts = ", ".join(f"%s::{_db_cast(f)}[]" for f in cols)
    sql = f'INSERT INTO "{meta.db_table}" ({names}) SELECT * FROM unnest({casts}) RETURNING "{meta.pk.column}"'  # noqa: S608
    ids: list[int] = []
    with connection.cursor() as cursor:
        for start in range(0, len(rows), CHUNK):
            chunk = rows[start : start + CHUNK]
            arrays = [
                [_db_value(f, v) for v in values] for f, values in zip(cols, zip(*chunk, strict=True), strict=True)
            ]
            cursor.execute(sql, arrays)
            ids.extend(r[0] for r in cursor.fetchall())
    return ids


def reserve_ids(model, count: int) -> list[int]:
    """Take `count` ids from the table's sequence (PostgreSQL); [] elsewhere."""
    if connection.vendor != "postgresql" or not count:
        return []
    meta = model._meta
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT nextval(pg_get_serial_sequence(%s, %s)) FROM generate_series(1, %s)",
            [meta.db_table, meta.pk.column, count],
        )
        return [row[0] for row in cursor.fetchall()]


def update_rows(model, fields: list[str], rows: list[tuple]) -> None:
    """Set `fields` (attribute names) of many rows, given as `(pk, *values)` tuples. On PostgreSQL
    one `UPDATE ... FROM unnest(arrays)` per 5,000 rows: Django's bulk_update builds a CASE per
    field over every row, which costs seconds per thousand rows; elsewhere bulk_update."""
    if not rows:
        return
    meta = model._meta
    cols = [meta.get_field(name) for name in fields]
    if connection.vendor != "postgresql":
        objs = [model(pk=row[0], **{f.attname: v for f, v in zip(cols, row[1:], strict=True)}) for row in rows]
        model.objects.bulk_update(objs, [f.name for f in cols], batch_size=500)
        return
    casts = ", ".join([f"%s::{_db_cast(meta.pk)}[]"] + [f"%s::{_db_cast(f)}[]" for f in cols])
    aliases = ", ".join(["pk_"] + [f"c{i}" for i in range(len(cols))])
    assignments = ", ".join(f'"{f.column}" = v.c{i}' for i, f in enumerate(cols))
    table = meta.db_table
    sql = (
        f'UPDATE "{table}" SET {assignments} FROM unnest({casts}) AS v({aliases}) '  # noqa: S608
        f'WHERE "{table}"."{meta.pk.column}" = v.pk_'
    )
    with connection.cursor() as cursor:
        for start in range(0, len(rows), CHUNK):
            chunk = rows[start : start + CHUNK]
            columns = list(zip(*chunk, strict=True))
            arrays = [list(columns[0])] + [
                [_db_value(f, v) for v in values] for f, values in zip(cols, columns[1:], strict=True)
            ]
            cursor.execute(sql, arrays)


def insert_objects(model, objs: list) -> None:
    """Insert model instances whose primary keys are already set (see reserve_ids), every concrete
    field as the instance holds it, in one statement per CHUNK rows. For documents whose content
    hash is taken over the instance before it is written."""
    if not objs:
        return
    fields = [f.attname for f in model._meta.concrete_fields]
    insert_rows(model, fields, [tuple(getattr(obj, name) for name in fields) for obj in objs])
    for obj in objs:
        obj._state.adding = False
        obj._state.db = "default"
