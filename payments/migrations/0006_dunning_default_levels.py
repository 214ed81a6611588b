from django.db import migrations

BODY = {
    "friendly": (
        "Dear {{ customer.legal_name|default:customer.name }},\n\n"
        "our records show the invoices below as unpaid past their due date. Perhaps this has slipped "
        "through; we would be grateful if you could settle them soon.\n\n"
        "{{ invoice_table }}\n\nTotal overdue: {{ overdue_total }} {{ currency }}\n\n"
        "If you have already paid, please ignore this reminder. Your statement of account is attached.\n\n"
        "Kind regards,\n{{ seller.legal_name|default:seller.name }}\n"
    ),
    "firm": (
        "Dear {{ customer.legal_name|default:customer.name }},\n\n"
        "despite our earlier reminder, the invoices below remain unpaid. Please pay the overdue amount "
        "within 7 days.\n\n"
        "{{ invoice_table }}\n\nTotal overdue: {{ overdue_total }} {{ currency }}"
        "{% if fee_total %}\nReminder fees charged: {{ fee_total }} {{ currency }}{% endif %}\n\n"
        "Your statement of account is attached. Contact us at {{ seller.email }} if anything is unclear.\n\n"
        "{{ seller.legal_name|default:seller.name }}\n"
    ),
    "final": (
        "Dear {{ customer.legal_name|default:customer.name }},\n\n"
        "FINAL NOTICE. The invoices below are seriously overdue. Unless we receive payment within 7 days "
        "we will suspend deliveries and pass the matter to collection.\n\n"
        "{{ invoice_table }}\n\nTotal overdue: {{ overdue_total }} {{ currency }}"
        "{% if fee_total %}\nReminder fees charged: {{ fee_total }} {{ currency }}{% endif %}\n\n"
        "Your statement of account is attached.\n\n{{ seller.legal_name|default:seller.name }}\n"
    ),
}
LEVELS = [
    ("First reminder", 7, "friendly", "Payment reminder: {{ invoice_count }} overdue invoice{{ invoice_count|pluralize }}"),
    ("Second reminder", 21, "firm", "Second reminder: {{ overdue_total }} {{ currency }} overdue"),
    ("Final notice", 45, "final", "FINAL NOTICE: {{ overdue_total }} {{ currency }} overdue"),
]


def seed(apps, schema_editor):
    DunningLevel = apps.get_model("payments", "DunningLevel")
    for name, days, tone, subject in LEVELS:
        DunningLevel.objects.get_or_create(
            days_overdue=days,
            defaults={"name": name, "tone": tone, "subject_template": subject, "body_template": BODY[tone]},
        )


def unseed(apps, schema_editor):
    DunningLevel = apps.get_model("payments", "DunningLevel")
    DunningLevel.objects.filter(days_overdue__in=[days for _n, days, _t, _s in LEVELS], items__isnull=True).delete()


class Migration(migrations.Migration):
    dependencies = [("payments", "0005_dunning")]

    operations = [migrations.RunPython(seed, unseed)]
