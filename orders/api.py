"""REST API for products and orders. Orders are created and moved through their lifecycle by the
order services; POST /orders/{id}/invoice/ is added in invoicing.api (orders never import invoicing)."""

from decimal import Decimal

from django_filters import rest_framework as filters
from drf_spectacular.utils import extend_schema, extend_schema_view
from rest_framework import mixins, serializers, status, viewsets
from rest_framework.decorators import action
from rest_framework.response import Response

from billing.api import ACTION_ERRORS, ERRORS, ModelCleanSerializer
from billing.models import Customer

from . import services
from .models import Order, OrderChannel, OrderLine, OrderStatus, Product

# --- Products ----------------------------------------------------------------------------------


class ProductSerializer(ModelCleanSerializer):
    class Meta:
        model = Product
        fields = ["id", "sku", "name", "description", "unit", "unit_price", "tax_rate", "active"]
        extra_kwargs = {"unit_price": {"min_value": Decimal("0")}}


class ProductFilter(filters.FilterSet):
    class Meta:
        model = Product
        fields = ["active", "tax_rate"]


@extend_schema_view(
    create=extend_schema(responses={201: ProductSerializer, **ERRORS}),
    update=extend_schema(responses={200: ProductSerializer, **ERRORS}),
    partial_update=extend_schema(responses={200: ProductSerializer, **ERRORS}),
)
@extend_schema(tags=["products"])
class ProductViewSet(
    mixins.CreateModelMixin,
    mixins.ListModelMixin,
    mixins.RetrieveModelMixin,
    mixins.UpdateModelMixin,
    viewsets.GenericViewSet,
):
    """Products. Not deletable (orders point at them); set `active` to false to stop selling one."""

    queryset = Product.objects.all()
    serializer_class = ProductSerializer
    filterset_class = ProductFilter
    search_fields = ["sku", "name"]
    ordering_fields = ["id", "sku", "name", "unit_price"]


# --- Orders ------------------------------------------------------------------------------------


class OrderLineSerializer(serializers.ModelSerializer):
    class Meta:
        model = OrderLine
        fields = [
            "id",
            "position",
            "product",
            "description",
            "quantity",
            "unit",
            "unit_price",
            "discount_percent",
            "tax_rate",
            "tax_percent",
            "tax_category",
            "net_amount",
        ]
        read_only_fields = fields


class OrderSerializer(serializers.ModelSerializer):
    lines = OrderLineSerializer(many=True, read_only=True)

    class Meta:
        model = Order
        fields = [
            "id",
            "number",
            "status",
            "order_date",
            "customer",
            "customer_reference",
            "currency",
            "net_total",
            "tax_total",
            "gross_total",
            "channel",
            "notes",
            "created_at",
            "confirmed_at",
            "fulfilled_at",
            "lines",
        ]
        read_only_fields = fields


class OrderLineInputSerializer(serializers.Serializer):
    product = serializers.PrimaryKeyRelatedField(queryset=Product.objects.select_related("tax_rate"))
    quantity = serializers.DecimalField(max_digits=14, decimal_places=3, min_value=Decimal("0.001"))
    unit_price = serializers.DecimalField(
        max_digits=14,
        decimal_places=2,
        min_value=Decimal("0"),
        required=False,
        allow_null=True,
        help_text="Overrides the product's price.",
    )
    description = serializers.CharField(
        max_length=500, required=False, allow_blank=True, help_text="Defaults to the product's name."
    )
    discount_percent = serializers.DecimalField(
        max_digits=5, decimal_places=2, min_value=Decimal("0"), max_value=Decimal("100"), required=False
    )


class OrderCreateSerializer(serializers.Serializer):
    customer = serializers.PrimaryKeyRelatedField(queryset=Customer.objects.all())
    customer_reference = serializers.CharField(max_length=80, required=False, allow_blank=True)
    order_date = serializers.DateField(required=False, help_text="Defaults to today.")
    notes = serializers.CharField(required=False, allow_blank=True, max_length=10000)
    lines = OrderLineInputSerializer(many=True, allow_empty=False, max_length=1000)


class OrderCancelSerializer(serializers.Serializer):
    reason = serializers.CharField(max_length=255, required=False, allow_blank=True)


class OrderFilter(filters.FilterSet):
    status = filters.MultipleChoiceFilter(choices=OrderStatus.choices)
    customer = filters.NumberFilter(field_name="customer_id")
    order_date = filters.DateFromToRangeFilter()

    class Meta:
        model = Order
        fields = ["status", "customer", "currency", "channel", "order_date"]


def order_queryset():
    return Order.objects.prefetch_related("lines")


@extend_schema_view(
    list=extend_schema(summary="List orders"),
    retrieve=extend_schema(summary="Show an order with its lines"),
)
@extend_schema(tags=["orders"])
class OrderViewSet(mixins.ListModelMixin, mixins.RetrieveModelMixin, viewsets.GenericViewSet):
    """Sales orders. Created as drafts with channel `api`; moved on only by the actions below."""

    serializer_class = OrderSerializer
    filterset_class = OrderFilter
    search_fields = ["number", "customer_reference"]
    ordering_fields = ["id", "number", "order_date", "gross_total", "status"]

    def get_queryset(self):
        # Actions lock and re-read the order in the service; only the representation needs the lines.
        return order_queryset() if self.action in ("list", "retrieve") else Order.objects.all()

    def get_serializer_class(self):
        if self.action == "create":
            return OrderCreateSerializer
        if self.action == "cancel":
            return OrderCancelSerializer
        return OrderSerializer

    def _respond(self, order: Order, http_status=status.HTTP_200_OK) -> Response:
        fresh = order_queryset().get(pk=order.pk)
        return Response(OrderSerializer(fresh, context=self.get_serializer_context()).data, status=http_status)

    @extend_schema(
        summary="Create a draft order",
        request=OrderCreateSerializer,
        responses={201: OrderSerializer, **ERRORS},
    )
    def create(self, request, *args, **kwargs):
        serializer = OrderCreateSerializer(data=request.data, context=self.get_serializer_context())
        serializer.is_valid(raise_exception=True)
        data = serializer.validated_data
        lines = [{key: value for key, value in line.items() if value is not None} for line in data["lines"]]
        order = services.order_create(
            customer=data["customer"],
            lines=lines,
            actor=request.user,
            customer_reference=data.get("customer_reference", ""),
            order_date=data.get("order_date"),
            notes=data.get("notes", ""),
            channel=OrderChannel.API,
        )
        return self._respond(order, status.HTTP_201_CREATED)

    @extend_schema(
        summary="Confirm a draft order (credit control)",
        request=None,
        responses={200: OrderSerializer, **ACTION_ERRORS},
    )
    @action(detail=True, methods=["post"])
    def confirm(self, request, pk=None):
        return self._respond(services.order_confirm(order=self.get_object(), actor=request.user))

    @extend_schema(
        summary="Mark a confirmed order fulfilled", request=None, responses={200: OrderSerializer, **ACTION_ERRORS}
    )
    @action(detail=True, methods=["post"])
    def fulfill(self, request, pk=None):
        return self._respond(services.order_fulfill(order=self.get_object(), actor=request.user))

    @extend_schema(
        summary="Cancel a draft or confirmed order",
        request=OrderCancelSerializer,
        responses={200: OrderSerializer, **ACTION_ERRORS},
    )
    @action(detail=True, methods=["post"])
    def cancel(self, request, pk=None):
        order = self.get_object()
        serializer = OrderCancelSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        reason = serializer.validated_data.get("reason", "")
        return self._respond(services.order_cancel(order=order, actor=request.user, reason=reason))
