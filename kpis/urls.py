from django.urls import path

from . import views

urlpatterns = [
    path("", views.home, name="home"),
    path("kpis/", views.kpi_dashboard, name="kpi-dashboard"),
    path("kpis/export/<slug:table>.csv", views.kpi_export, name="kpi-export"),
]
