"""Billing and penalty runs in the API: list, show, and start one as of a date. The two viewsets
differ only in their model, their figures and the service that starts a run."""

from django_filters import rest_framework as filters
from drf_spectacular.utils import extend_schema
from rest_framework import mixins, serializers, status, viewsets
from rest_framework.response import Response

from .api import ErrorSerializer


class RunStartSerializer(serializers.Serializer):
    as_of = serializers.DateField(
        required=False,
        help_text="YYYY-MM-DD, today or earlier (a later date is refused with 400). Default: today.",
    )


class RunSerializer(serializers.ModelSerializer):
    """Common fields of a run; subclasses add their figures in Meta.fields."""

    started_by = serializers.CharField(source="started_by.get_username", default=None, read_only=True)
    progress_percent = serializers.IntegerField(read_only=True)

    COMMON = ["id", "as_of", "status", "progress_percent", "errors", "started_by", "started_at", "finished_at"]


class RunFilter(filters.FilterSet):
    as_of = filters.DateFromToRangeFilter()


class RunViewSet(mixins.ListModelMixin, mixins.RetrieveModelMixin, viewsets.GenericViewSet):
    """Subclasses set `queryset`, `serializer_class`, `filterset_class` and `start(as_of, actor)`."""

    ordering_fields = ["id", "as_of", "started_at"]
    ordering = ["-started_at", "-id"]

    def start(self, *, as_of, actor):
        raise NotImplementedError

    def create(self, request, *args, **kwargs):
        data = RunStartSerializer(data=request.data)
        data.is_valid(raise_exception=True)
        run = self.start(as_of=data.validated_data.get("as_of"), actor=request.user)
        return Response(self.get_serializer(run).data, status=status.HTTP_202_ACCEPTED)


def start_schema(summary: str, description: str, serializer):
    return extend_schema(
        summary=summary,
        description=description,
        request=RunStartSerializer,
        responses={202: serializer, 400: ErrorSerializer},
    )
