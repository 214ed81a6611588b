from django.urls import path

from . import views, views_feedback

urlpatterns = [
    path("", views.home, name="home"),
    path("kpis/", views.kpi_dashboard, name="kpi-dashboard"),
    path("kpis/status/", views.kpi_status, name="kpi-status"),
    path("kpis/export/<slug:table>.csv", views.kpi_export, name="kpi-export"),
    # Public (no login): the signed link printed on invoices, see invoicing/feedback.py.
    path("feedback/<str:token>/", views_feedback.feedback_page, name="feedback"),
    path("feedback/<str:token>/thanks/", views_feedback.feedback_thanks, name="feedback-thanks"),
    path("customers/<int:pk>/feedback/", views_feedback.customer_feedback, name="customer-feedback"),
]
