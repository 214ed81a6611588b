"""OTC settings, read from the environment.

With nothing configured the project runs on an embedded default: a SQLite file under ``var/``
and Celery tasks run in-process, so ``make start`` works on a machine with Python alone.
Set ``DATABASE_URL`` and ``REDIS_URL`` to run on PostgreSQL with real workers.
"""

from datetime import timedelta
from pathlib import Path

import environ
from celery.schedules import crontab
from whitenoise.compress import Compressor

BASE_DIR = Path(__file__).resolve().parent.parent
VAR_DIR = BASE_DIR / "var"

env = environ.Env()
environ.Env.read_env(BASE_DIR / ".env", overwrite=False) if (BASE_DIR / ".env").exists() else None

DEBUG = env.bool("DEBUG", default=False)
# An unset key is only acceptable on the embedded default, never in a configured deployment.
EMBEDDED = "DATABASE_URL" not in env
SECRET_KEY = env(
    "SECRET_KEY",
    default="embedded-default-not-for-production-0123456789abcdefghijklmnopqrstuvwxyz"
    if EMBEDDED or DEBUG
    else environ.Env.NOTSET,
)
ALLOWED_HOSTS = env.list("ALLOWED_HOSTS", default=["localhost", "127.0.0.1", "[::1]"])
CSRF_TRUSTED_ORIGINS = env.list("CSRF_TRUSTED_ORIGINS", default=[])

INSTALLED_APPS = [
    "django.contrib.admin",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "django.contrib.humanize",
    "whitenoise.runserver_nostatic",
    "django.contrib.staticfiles",
    "rest_framework",
    "rest_framework.authtoken",
    "django_filters",
    "drf_spectacular",
    "drf_spectacular_sidecar",
    "django_celery_beat",
    "django_htmx",
    "bootstrap",
    "otc",
    "billing",
    "orders",
    "invoicing",
    "payments",
    "kpis",
]

MIDDLEWARE = [
    "django.middleware.security.SecurityMiddleware",
    "whitenoise.middleware.WhiteNoiseMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
    "django_htmx.middleware.HtmxMiddleware",
]

ROOT_URLCONF = "otc.urls"
WSGI_APPLICATION = "otc.wsgi.application"

TEMPLATES = [
    {
        "BACKEND": "django.template.backends.django.DjangoTemplates",
        "DIRS": [BASE_DIR / "templates"],
        "APP_DIRS": True,
        "OPTIONS": {
            "context_processors": [
                "django.template.context_processors.request",
                "django.contrib.auth.context_processors.auth",
                "django.contrib.messages.context_processors.messages",
                "otc.context_processors.company",
            ],
        },
    },
]

VAR_DIR.mkdir(exist_ok=True)
DATABASES = {
    "default": env.db("DATABASE_URL", default=f"sqlite:///{VAR_DIR / 'otc.sqlite3'}"),
}
DATABASES["default"]["CONN_MAX_AGE"] = env.int("CONN_MAX_AGE", default=60)
DATABASES["default"]["CONN_HEALTH_CHECKS"] = True
if DATABASES["default"]["ENGINE"] == "django.db.backends.sqlite3":
    # Web and the in-process scheduler share the file: wait for locks instead of failing.
    DATABASES["default"]["OPTIONS"] = {"timeout": 20, "transaction_mode": "IMMEDIATE"}
    DATABASES["default"]["CONN_MAX_AGE"] = 0
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

REDIS_URL = env("REDIS_URL", default="")
if REDIS_URL:
    CACHES = {"default": {"BACKEND": "otc.cache.RedisCache", "LOCATION": REDIS_URL}}
else:
    CACHES = {"default": {"BACKEND": "django.core.cache.backends.locmem.LocMemCache"}}

AUTH_PASSWORD_VALIDATORS = [
    {"NAME": "django.contrib.auth.password_validation.UserAttributeSimilarityValidator"},
    {"NAME": "django.contrib.auth.password_validation.MinimumLengthValidator"},
    {"NAME": "django.contrib.auth.password_validation.CommonPasswordValidator"},
    {"NAME": "django.contrib.auth.password_validation.NumericPasswordValidator"},
]
LOGIN_URL = "login"
LOGIN_REDIRECT_URL = "home"
LOGOUT_REDIRECT_URL = "login"

LANGUAGE_CODE = env("LANGUAGE_CODE", default="en-gb")
TIME_ZONE = env("TIME_ZONE", default="UTC")
USE_I18N = True
USE_TZ = True

STATIC_URL = "static/"
STATIC_ROOT = env("STATIC_ROOT", default=str(VAR_DIR / "static"))
Path(STATIC_ROOT).mkdir(parents=True, exist_ok=True)  # whitenoise warns on every request otherwise
STATICFILES_DIRS = [BASE_DIR / "static"]
MEDIA_URL = "media/"
MEDIA_ROOT = env("MEDIA_ROOT", default=str(VAR_DIR / "media"))
STORAGES = {
    "default": {"BACKEND": "django.core.files.storage.FileSystemStorage"},
    "staticfiles": {
        "BACKEND": "whitenoise.storage.CompressedManifestStaticFilesStorage"
        if not DEBUG and not EMBEDDED
        else "django.contrib.staticfiles.storage.StaticFilesStorage"
    },
}
WHITENOISE_USE_FINDERS = DEBUG or EMBEDDED
# Source maps are for developers' tools, not worth compressing (brotli on the API docs' 4 MB maps
# was most of collectstatic's time); only the hashed names are served, so the originals go.
WHITENOISE_SKIP_COMPRESS_EXTENSIONS = (*Compressor.SKIP_COMPRESS_EXTENSIONS, "map")
WHITENOISE_KEEP_ONLY_HASHED_FILES = True

EMAIL_CONFIG = env.email_url("EMAIL_URL", default="consolemail://")
vars().update(EMAIL_CONFIG)
DEFAULT_FROM_EMAIL = env("DEFAULT_FROM_EMAIL", default="billing@otc.example")

# --- Security (production values whenever DEBUG is off; `check --deploy` passes) ---
SECURE_PROXY_SSL_HEADER = ("HTTP_X_FORWARDED_PROTO", "https")
SECURE_SSL_REDIRECT = env.bool("SECURE_SSL_REDIRECT", default=not DEBUG and not EMBEDDED)
SESSION_COOKIE_SECURE = env.bool("SESSION_COOKIE_SECURE", default=not DEBUG and not EMBEDDED)
CSRF_COOKIE_SECURE = env.bool("CSRF_COOKIE_SECURE", default=not DEBUG and not EMBEDDED)
SECURE_HSTS_SECONDS = env.int("SECURE_HSTS_SECONDS", default=0 if DEBUG or EMBEDDED else 31536000)
SECURE_HSTS_INCLUDE_SUBDOMAINS = not DEBUG and not EMBEDDED
SECURE_HSTS_PRELOAD = not DEBUG and not EMBEDDED
SECURE_CONTENT_TYPE_NOSNIFF = True
X_FRAME_OPTIONS = "DENY"

# --- REST API ---
REST_FRAMEWORK = {
    "DEFAULT_AUTHENTICATION_CLASSES": [
        "otc.auth.CachedTokenAuthentication",
        "rest_framework.authentication.SessionAuthentication",
    ],
    "DEFAULT_PERMISSION_CLASSES": ["rest_framework.permissions.IsAuthenticated"],
    "DEFAULT_PAGINATION_CLASS": "otc.api.Pagination",
    "PAGE_SIZE": 50,
    "DEFAULT_FILTER_BACKENDS": [
        "django_filters.rest_framework.DjangoFilterBackend",
        "rest_framework.filters.OrderingFilter",
        "rest_framework.filters.SearchFilter",
    ],
    "DEFAULT_SCHEMA_CLASS": "drf_spectacular.openapi.AutoSchema",
    "EXCEPTION_HANDLER": "otc.api.exception_handler",
    "COERCE_DECIMAL_TO_STRING": True,
    "DATE_FORMAT": "%Y-%m-%d",
}
# API token lookups are cached this long (otc/auth.py); saving or deleting the token or its user
# drops the entry at once. 0 looks every token up in the database.
OTC_TOKEN_CACHE_SECONDS = env.int("OTC_TOKEN_CACHE_SECONDS", default=60)
SPECTACULAR_SETTINGS = {
    "TITLE": "OTC API",
    "DESCRIPTION": "Order-to-cash: customers, orders, invoices, payments and KPIs.",
    "VERSION": "1.0.0",
    "SERVE_INCLUDE_SCHEMA": False,
    "SWAGGER_UI_DIST": "SIDECAR",
    "SWAGGER_UI_FAVICON_HREF": "SIDECAR",
    "REDOC_DIST": "SIDECAR",
    "COMPONENT_SPLIT_REQUEST": True,
    # Several models have a `source` field with their own choices: each enum gets a clear name.
    "ENUM_NAME_OVERRIDES": {
        "PaymentSourceEnum": "payments.models.PaymentSource",
        "BankStatementSourceEnum": "payments.models.BankStatementSource",
        "FeedbackSourceEnum": "kpis.models.FeedbackSource",
    },
}

# --- Celery ---
CELERY_BROKER_URL = REDIS_URL or "filesystem://"
if not REDIS_URL:
    # Embedded default: no broker service. Requests run their tasks in-process; the scheduler
    # (worker with beat) exchanges its periodic tasks through files under var/.
    _queue = VAR_DIR / "broker"
    (_queue / "out").mkdir(parents=True, exist_ok=True)
    (_queue / "processed").mkdir(parents=True, exist_ok=True)
    CELERY_BROKER_TRANSPORT_OPTIONS = {
        "data_folder_in": str(_queue / "out"),
        "data_folder_out": str(_queue / "out"),
        "processed_folder": str(_queue / "processed"),
        # Exchange bindings (the worker's remote control uses them); kombu's default is ./control.
        "control_folder": str(_queue / "control"),
    }
CELERY_RESULT_BACKEND = None
CELERY_TASK_ALWAYS_EAGER = env.bool("CELERY_TASK_ALWAYS_EAGER", default=not REDIS_URL)
CELERY_TASK_EAGER_PROPAGATES = True
CELERY_TASK_SERIALIZER = "json"
CELERY_ACCEPT_CONTENT = ["json"]
CELERY_TIMEZONE = TIME_ZONE
CELERY_TASK_TIME_LIMIT = 300
CELERY_TASK_SOFT_TIME_LIMIT = 240
CELERY_TASK_ACKS_LATE = True
CELERY_TASK_REJECT_ON_WORKER_LOST = True
CELERY_WORKER_PREFETCH_MULTIPLIER = 1
CELERY_WORKER_MAX_TASKS_PER_CHILD = 500
# A safety net, not the budget: a child past 200 MB resident (a PDF child settles near 140 MB, see
# bench/results/pdf.md) is replaced once its task is done, so a leak cannot grow unnoticed.
CELERY_WORKER_MAX_MEMORY_PER_CHILD = 200_000  # KiB
# Celery's Django fixup closes the database connection around every task unless this is set: a
# new PostgreSQL connection (and server process) for each PDF. Workers keep theirs as web requests
# do instead: otc.celery closes it around a task only when CONN_MAX_AGE or an error says so.
CELERY_DB_REUSE_MAX = env.int("CELERY_DB_REUSE_MAX", default=1000)
CELERY_TASK_DEFAULT_QUEUE = env("CELERY_QUEUE", default="otc")
CELERY_BROKER_CONNECTION_RETRY_ON_STARTUP = True
CELERY_BEAT_SCHEDULER = "django_celery_beat.schedulers:DatabaseScheduler"
CELERY_BEAT_SCHEDULE = {
    "invoicing-sweep-pending-pdfs": {
        "task": "invoicing.tasks.invoice_sweep_pending_pdfs",
        "schedule": timedelta(minutes=10),
    },
    "invoicing-resend-lost-billing-batches": {
        "task": "invoicing.tasks.billing_run_resend_lost_batches",
        "schedule": timedelta(minutes=10),
    },
    "payments-resend-lost-penalty-batches": {
        "task": "payments.tasks.penalty_run_resend_lost_batches",
        "schedule": timedelta(minutes=10),
    },
    "invoicing-billing-run": {
        "task": "invoicing.tasks.billing_run_daily",
        "schedule": crontab(hour=1, minute=0),
    },
    "payments-penalty-run": {
        "task": "payments.tasks.penalty_run_daily",
        "schedule": crontab(hour=1, minute=30),
    },
    "invoicing-sweep-pending-deliveries": {
        "task": "invoicing.tasks.invoice_sweep_pending_deliveries",
        "schedule": timedelta(minutes=15),
    },
    "invoicing-close-print-batches": {
        "task": "invoicing.tasks.print_batches_close_due",
        "schedule": crontab(hour=0, minute=30),
    },
    "payments-sweep-bank-statements": {
        "task": "payments.tasks.bank_statements_sweep",
        "schedule": timedelta(minutes=10),
    },
    "payments-dunning-run": {
        "task": "payments.tasks.dunning_run_daily",
        "schedule": crontab(hour=2, minute=0),
    },
    "payments-monthly-statements": {
        "task": "payments.tasks.statements_send_monthly",
        "schedule": crontab(day_of_month=1, hour=6, minute=0),
    },
    "otc-idempotency-purge": {
        "task": "otc.tasks.idempotency_purge",
        "schedule": crontab(minute=17),
    },
    "kpis-invariant-audit": {
        "task": "kpis.tasks.otc_audit_nightly",
        "schedule": crontab(hour=3, minute=0),
    },
    "kpis-snapshot-nightly": {
        "task": "kpis.tasks.kpi_snapshot_nightly",
        "schedule": crontab(hour=2, minute=45),
    },
    "kpis-log-summary": {
        "task": "kpis.tasks.kpi_log_summary",
        "schedule": crontab(hour=2, minute=30),
    },
}

# --- OTC: payment gateway webhooks ---
# One shared secret per provider, `provider=secret,...`: POST /api/v1/payments/webhooks/<provider>/
# accepts only providers listed here, signed `OTC-Signature: t=<unix time>,v1=<hex HMAC-SHA256 of
# "<t>.<raw body>">` with that provider's secret, within OTC_WEBHOOK_TOLERANCE seconds of now.
OTC_WEBHOOK_SECRETS = env.dict("OTC_WEBHOOK_SECRETS", default={})
OTC_WEBHOOK_TOLERANCE = env.int("OTC_WEBHOOK_TOLERANCE", default=300)

# --- OTC: the seller printed on every invoice ---
OTC_COMPANY = {
    "name": env("OTC_COMPANY_NAME", default="OTC Demo Trading Ltd"),
    "legal_name": env("OTC_COMPANY_LEGAL_NAME", default="OTC Demo Trading Ltd"),
    "tax_id": env("OTC_COMPANY_TAX_ID", default="FR40303265045"),
    "address": env.list("OTC_COMPANY_ADDRESS", default=["12 Rue de la Paix", "75002 Paris", "France"]),
    "country": env("OTC_COMPANY_COUNTRY", default="FR"),
    "email": env("OTC_COMPANY_EMAIL", default="billing@otc.example"),
    "phone": env("OTC_COMPANY_PHONE", default="+33 1 23 45 67 89"),
    "iban": env("OTC_COMPANY_IBAN", default="FR7630006000011234567890189"),
    "bic": env("OTC_COMPANY_BIC", default="AGRIFRPP"),
}

# Where customers reach the public pages (the feedback link on invoices and their e-mails).
OTC_PUBLIC_URL = env("OTC_PUBLIC_URL", default="http://localhost:8000")

LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "handlers": {"console": {"class": "logging.StreamHandler"}},
    "root": {"handlers": ["console"], "level": env("LOG_LEVEL", default="INFO")},
    "loggers": {"weasyprint": {"level": "WARNING"}, "fontTools": {"level": "WARNING"}},
}
