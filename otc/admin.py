"""The admin site's names; the apps register their models in their own admin modules."""

from django.contrib import admin

admin.site.site_header = "OTC administration"
admin.site.site_title = "OTC admin"
admin.site.index_title = "Order to cash: master data, documents and records"
admin.site.site_url = "/kpis/"
