"""The REST API root, /api/v1/: each app registers its viewsets here."""

from rest_framework.routers import DefaultRouter

router = DefaultRouter()
urlpatterns = router.urls
