from django.contrib import admin
from django.templatetags.static import static
from django.urls import include, path
from django.views.generic import RedirectView
from drf_spectacular.views import SpectacularAPIView, SpectacularRedocView, SpectacularSwaggerView


class FaviconView(RedirectView):
    """Browsers ask for /favicon.ico on pages that name no icon (the admin, the API docs): the app's
    icon, rather than a 404 in every console."""

    permanent = True

    def get_redirect_url(self, *args, **kwargs):
        return static("img/favicon.svg")  # per request: the hashed name exists once collected


urlpatterns = [
    path("favicon.ico", FaviconView.as_view()),
    path("admin/", admin.site.urls),
    path("api/v1/", include("otc.api_urls")),
    path("api/schema/", SpectacularAPIView.as_view(), name="schema"),
    path("api/docs/", SpectacularSwaggerView.as_view(url_name="schema"), name="swagger-ui"),
    path("api/redoc/", SpectacularRedocView.as_view(url_name="schema"), name="redoc"),
    path("accounts/", include("django.contrib.auth.urls")),
    path("", include("billing.urls")),
    path("", include("orders.urls")),
    path("", include("invoicing.urls")),
    path("", include("payments.urls")),
    path("", include("kpis.urls")),
]
