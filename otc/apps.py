from django.apps import AppConfig


class OtcConfig(AppConfig):
    name = "otc"
    verbose_name = "OTC"

    def ready(self):
        from . import auth  # noqa: F401  (connects the token cache's signal receivers)
