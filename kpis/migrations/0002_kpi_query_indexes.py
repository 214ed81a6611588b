"""Indexes the KPI queries need on tables of lower apps: credit sales, accuracy and feedback select
invoices by issue date; balances on a past day and payment behaviour select payments by the day they
were received. Plain SQL, so the models of those apps (and their migration state) stay as they are."""

from django.db import migrations

INDEXES = [
    ("kpis_invoice_issue_date", "invoicing_invoice", "issue_date"),
    ("kpis_payment_received_on", "payments_payment", "received_on"),
]


class Migration(migrations.Migration):
    dependencies = [
        ("kpis", "0001_feedback_and_snapshots"),
        ("invoicing", "0004_delivery"),
        ("payments", "0004_penalty_run_errors"),
    ]

    operations = [
        migrations.RunSQL(
            sql=f"CREATE INDEX IF NOT EXISTS {name} ON {table} ({column})",
            reverse_sql=f"DROP INDEX IF EXISTS {name}",
        )
        for name, table, column in INDEXES
    ]
