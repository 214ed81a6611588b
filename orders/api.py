"""REST API for products and orders. Orders are created and moved through their lifecycle by the
order services; POST /orders/{id}/invoice/ is added in invoicing.api (orders never import invoicing)."""

from datetime import timedelta
from decimal import Decimal

from django.core.exceptions import ValidationError as DjangoValidationError
from django.db import IntegrityError, connection
from django.utils import timezone
from django_filters import rest_framework as filters
from drf_spectacular.utils import extend_schema, extend_schema_field, extend_schema_view
from rest_framework import mixins, serializers, status, viewsets
from rest_framework.decorators import action
from rest_framework.relations import PKOnlyObject
from rest_framework.response import Response

from billing.api import ACTION_ERRORS, ERRORS, ErrorSerializer, ModelCleanSerializer
from billing.errors import DomainError
from billing.models import Customer, TaxRate
from otc.idempotency import IDEMPOTENCY_PARAMETER, idempotent

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


class FieldsOnceModelSerializer(serializers.ModelSerializer):
    """A read-only ModelSerializer that builds and binds its fields once per class, not on every
    instance. DRF rebuilds every field from the model and deep-copies it for each serializer
    instance, which was most of the cost of showing an order. The fields of a read-only
    serializer hold no state between calls, and none of these use the context (primary keys,
    decimals, dates, choices), so one bound set serves every instance; `fields` (the schema, the
    browsable API) still works the usual way."""

    @classmethod
    def _shared_fields(cls) -> list:
        shared = cls.__dict__.get("_shared_readable")
        if shared is None:
            shared = list(cls()._readable_fields)
            cls._shared_readable = shared
        return shared

    def to_representation(self, instance):
        ret = {}
        for field in self._shared_fields():
            try:
                attribute = field.get_attribute(instance)
            except serializers.SkipField:
                continue
            # As DRF's Serializer.to_representation: None stays None, without asking the field.
            check = attribute.pk if isinstance(attribute, PKOnlyObject) else attribute
            ret[field.field_name] = None if check is None else field.to_representation(attribute)
        return ret


class OrderLineSerializer(FieldsOnceModelSerializer):
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


class OrderSerializer(FieldsOnceModelSerializer):
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
            "entry_started_at",
            "created_at",
            "confirmed_at",
            "fulfilled_at",
            "lines",
        ]
        read_only_fields = fields


_MAX_PK = 2**63 - 1


def _pk_of(value) -> int | None:
    """The integer primary key a JSON value names, or None when only the database can tell."""
    if isinstance(value, str) and value.isascii() and value.isdigit() and len(value) < 19:
        value = int(value)
    if isinstance(value, int) and not isinstance(value, bool) and 0 < value <= _MAX_PK:
        return value
    return None


class PrefetchedPrimaryKeyRelatedField(serializers.PrimaryKeyRelatedField):
    """A PrimaryKeyRelatedField that first looks in the objects the view fetched for the whole
    request in one query (`context["prefetched"][model]`, see `prefetch_order_relations`), instead
    of one query per field; same answers and errors, it only saves the queries."""

    def to_internal_value(self, data):
        known = self.context.get("prefetched", {}).get(self.queryset.model, {})
        pk = _pk_of(data)
        if pk is not None and pk in known:
            if known[pk] is None:
                self.fail("does_not_exist", pk_value=data)
            return known[pk]
        return super().to_internal_value(data)


CUSTOMER_ENTRY_FIELDS = ("id", "code", "name", "currency")
PRODUCT_ENTRY_FIELDS = (
    "id",
    "sku",
    "name",
    "unit",
    "unit_price",
    "active",
    "tax_rate__id",
    "tax_rate__name",
    "tax_rate__rate",
    "tax_rate__category",
    "tax_rate__legal_note",
)


def _entry_columns(model, names) -> tuple[list[str], list[str]]:
    """(attnames, columns) of `names` in the model's field order, as Model.from_db takes values."""
    wanted = {model._meta.get_field(name).attname for name in names}
    fields = [f for f in model._meta.concrete_fields if f.attname in wanted]
    return [f.attname for f in fields], [f.column for f in fields]


# Only the columns order entry reads (the rest would be loaded and never used; another field, if
# something ever reads one, is loaded on access), by id, without the models' default ORDER BY. In
# SQL built from the models once, rather than compiled by the ORM for every request.
_CUSTOMER_ATTNAMES, _customer_columns = _entry_columns(Customer, CUSTOMER_ENTRY_FIELDS)
_PRODUCT_ATTNAMES, _product_columns = _entry_columns(
    Product, [name for name in PRODUCT_ENTRY_FIELDS if "__" not in name] + ["tax_rate"]
)
_TAX_RATE_ATTNAMES, _tax_rate_columns = _entry_columns(
    TaxRate, [name.split("__", 1)[1] for name in PRODUCT_ENTRY_FIELDS if name.startswith("tax_rate__")]
)
# Table and column names only: no value is formatted in.
_CUSTOMERS_SQL = (
    f"SELECT {', '.join(_customer_columns)} FROM {Customer._meta.db_table} "  # noqa: S608
    f"WHERE {Customer._meta.pk.column} = ANY(%s)"
)
_PRODUCTS_SQL = (
    f"SELECT {', '.join('p.' + c for c in _product_columns)}, {', '.join('t.' + c for c in _tax_rate_columns)} "  # noqa: S608
    f"FROM {Product._meta.db_table} p JOIN {TaxRate._meta.db_table} t "
    f"ON t.{TaxRate._meta.pk.column} = p.{Product._meta.get_field('tax_rate').column} "
    f"WHERE p.{Product._meta.pk.column} = ANY(%s)"
)


def prefetch_order_relations(orders: list) -> dict:
    """Customers and products (with tax rates) named by raw order payloads, in two queries,
    for `PrefetchedPrimaryKeyRelatedField`. Malformed payloads are skipped: the serializer reports them."""
    customer_ids, product_ids = set(), set()
    for order in orders:
        if not isinstance(order, dict):
            continue
        customer_ids.add(_pk_of(order.get("customer")))
        lines = order.get("lines")
        for line in lines if isinstance(lines, list) else []:
            if isinstance(line, dict):
                product_ids.add(_pk_of(line.get("product")))
    customer_ids.discard(None)
    product_ids.discard(None)
    customers, products = {}, {}
    with connection.cursor() as cursor:
        if customer_ids:
            cursor.execute(_CUSTOMERS_SQL, [sorted(customer_ids)])
            for row in cursor.fetchall():
                customer = Customer.from_db("default", _CUSTOMER_ATTNAMES, row)
                customers[customer.pk] = customer
        if product_ids:
            cursor.execute(_PRODUCTS_SQL, [sorted(product_ids)])
            split = len(_PRODUCT_ATTNAMES)
            for row in cursor.fetchall():
                product = Product.from_db("default", _PRODUCT_ATTNAMES, row[:split])
                product.tax_rate = TaxRate.from_db("default", _TAX_RATE_ATTNAMES, row[split:])
                products[product.pk] = product
    return {
        Customer: {pk: customers.get(pk) for pk in customer_ids},
        Product: {pk: products.get(pk) for pk in product_ids},
    }


class OrderLineInputSerializer(serializers.Serializer):
    product = PrefetchedPrimaryKeyRelatedField(queryset=Product.objects.select_related("tax_rate"))
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


# Clocks of integrators drift a little; an entry start further ahead than this is refused.
CLOCK_SKEW = timedelta(minutes=5)


class OrderCreateSerializer(serializers.Serializer):
    customer = PrefetchedPrimaryKeyRelatedField(queryset=Customer.objects.all())
    customer_reference = serializers.CharField(max_length=80, required=False, allow_blank=True)
    order_date = serializers.DateField(required=False, help_text="Defaults to today.")
    entry_started_at = serializers.DateTimeField(
        required=False,
        help_text="When entering this order began (ISO 8601; UTC if no offset is given); defaults to now. "
        "Feeds the order-entry-speed KPI, so it may not be in the future.",
    )
    notes = serializers.CharField(required=False, allow_blank=True, max_length=10000)
    lines = OrderLineInputSerializer(many=True, allow_empty=False, max_length=1000)

    def validate_entry_started_at(self, value):
        return entry_start(value)


def entry_start(value):
    now = timezone.now()
    if value > now + CLOCK_SKEW:
        raise serializers.ValidationError("Entry cannot start in the future.")
    # Within the skew: the entry started just now, as far as this server can tell.
    return min(value, now)


_ORDER_FIELDS = OrderCreateSerializer._declared_fields
_LINE_FIELDS = OrderLineInputSerializer._declared_fields
_ORDER_SCALARS = ("customer_reference", "order_date", "entry_started_at", "notes")
_LINE_SCALARS = ("quantity", "unit_price", "description", "discount_percent")


def lean_order_input(data, prefetched: dict) -> dict | None:
    """What `OrderCreateSerializer(data=data).validated_data` would be, for the common case of a
    valid order whose customer and products were prefetched, without DRF's nested serializer
    machinery (it copies and binds every field of the order and of each line for every request).
    Each value goes through the serializer's own field (same parsing, limits and rounding). Returns
    None when anything is off or unusual: the caller then validates with OrderCreateSerializer,
    which gives the errors, so they are exactly DRF's."""
    if type(data) is not dict:
        return None
    customers, products = prefetched.get(Customer, {}), prefetched.get(Product, {})
    customer = customers.get(_pk_of(data.get("customer")))
    lines = data.get("lines")
    if customer is None or type(lines) is not list or not 0 < len(lines) <= 1000:
        return None
    try:
        out = {"customer": customer}
        for name in _ORDER_SCALARS:
            if name in data:
                out[name] = _ORDER_FIELDS[name].run_validation(data[name])
        if "entry_started_at" in out:
            out["entry_started_at"] = entry_start(out["entry_started_at"])
        out_lines = []
        for line in lines:
            if type(line) is not dict or "quantity" not in line:
                return None
            product = products.get(_pk_of(line.get("product")))
            if product is None:
                return None
            item = {"product": product}
            for name in _LINE_SCALARS:
                if name in line:
                    item[name] = _LINE_FIELDS[name].run_validation(line[name])
            out_lines.append(item)
    except (serializers.ValidationError, DjangoValidationError, serializers.SkipField):
        return None
    out["lines"] = out_lines
    return out


BULK_MAX = 500
# Each order may have up to 1000 lines; a whole request is held to what one worker enters in seconds.
BULK_MAX_LINES = 10_000


@extend_schema_field(OrderCreateSerializer(many=True))
class _BulkOrdersField(serializers.ListField):
    """Parsed leniently (any JSON item) so that each order is validated, and answered, on its own."""


class OrderBulkCreateSerializer(serializers.Serializer):
    orders = _BulkOrdersField(
        child=serializers.JSONField(),
        allow_empty=False,
        max_length=BULK_MAX,
        help_text=f"1 to {BULK_MAX} orders, each as for POST /api/v1/orders/, with at most {BULK_MAX_LINES} "
        f"lines in all.",
    )

    def validate_orders(self, orders):
        lines = sum(len(o["lines"]) for o in orders if isinstance(o, dict) and isinstance(o.get("lines"), list))
        if lines > BULK_MAX_LINES:
            raise serializers.ValidationError(
                f"These orders have {lines} lines; send at most {BULK_MAX_LINES} lines per request."
            )
        return orders


class OrderBulkItemResultSerializer(serializers.Serializer):
    index = serializers.IntegerField(help_text="The order's position in the request, from 0.")
    status = serializers.IntegerField(help_text="201 if created; else what POST /orders/ would answer (400, 403, 409).")
    order = OrderSerializer(required=False, help_text="The created order (status 201).")
    errors = ErrorSerializer(required=False, help_text="Why the order was refused, in the usual error shape.")


class OrderBulkResultSerializer(serializers.Serializer):
    results = OrderBulkItemResultSerializer(many=True)
    created = serializers.IntegerField()
    failed = serializers.IntegerField()


class OrderCancelSerializer(serializers.Serializer):
    reason = serializers.CharField(max_length=255, required=False, allow_blank=True)


class OrderConfirmSerializer(serializers.Serializer):
    override_reason = serializers.CharField(
        max_length=services.OVERRIDE_REASON_MAX,
        required=False,
        allow_blank=True,
        help_text="Confirms an order over the customer's credit limit; needs the override_credit_limit "
        "permission (else 403). Audited and noted in the order's history. Ignored within the limit.",
    )


class OrderFilter(filters.FilterSet):
    status = filters.MultipleChoiceFilter(choices=OrderStatus.choices)
    customer = filters.NumberFilter(field_name="customer_id")
    order_date = filters.DateFromToRangeFilter()

    class Meta:
        model = Order
        fields = ["status", "customer", "currency", "channel", "order_date"]


# An Idempotency-Key adds 409 (still in progress) and 422 (reused for another request).
IDEMPOTENT_ERRORS = {**ERRORS, 409: ErrorSerializer, 422: ErrorSerializer}
IDEMPOTENT_ACTION_ERRORS = {**ACTION_ERRORS, 422: ErrorSerializer}


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
        if self.action == "confirm":
            return OrderConfirmSerializer
        return OrderSerializer

    def _respond(self, order: Order, http_status=status.HTTP_200_OK) -> Response:
        fresh = order_queryset().get(pk=order.pk)
        return Response(OrderSerializer(fresh, context=self.get_serializer_context()).data, status=http_status)

    def _entry_context(self, orders: list) -> dict:
        return {**self.get_serializer_context(), "prefetched": prefetch_order_relations(orders)}

    def _create_order(self, data, context) -> Order:
        """Validate one order as POST /orders/ takes it and create it (in its own transaction)."""
        lean = lean_order_input(data, context["prefetched"])
        if lean is None:
            serializer = OrderCreateSerializer(data=data, context=context)
            serializer.is_valid(raise_exception=True)
            lean = serializer.validated_data
        data = lean
        lines = [{key: value for key, value in line.items() if value is not None} for line in data["lines"]]
        return services.order_create(
            customer=data["customer"],
            lines=lines,
            actor=context["request"].user,
            customer_reference=data.get("customer_reference", ""),
            order_date=data.get("order_date"),
            entry_started_at=data.get("entry_started_at"),
            notes=data.get("notes", ""),
            channel=OrderChannel.API,
        )

    @extend_schema(
        summary="Create a draft order",
        request=OrderCreateSerializer,
        parameters=[IDEMPOTENCY_PARAMETER],
        responses={201: OrderSerializer, **IDEMPOTENT_ERRORS, 403: ErrorSerializer},
    )
    @idempotent
    def create(self, request, *args, **kwargs):
        context = self._entry_context([request.data])
        order = self._create_order(request.data, context)
        # order_create hands back the order with its lines: no need to read them back.
        return Response(OrderSerializer(order, context=context).data, status=status.HTTP_201_CREATED)

    @extend_schema(
        summary="Create up to 500 draft orders at once",
        description=f"Each order is validated and saved on its own, in its own transaction, exactly as "
        f"POST /api/v1/orders/ would (channel `api`): valid orders are saved even when others fail. "
        f"`results` has one entry per order, in request order: `status` 201 with the `order`, or the "
        f"status POST /orders/ would have answered (400, 403, 409) with its error under `errors`.\n\n"
        f"The response is **201** when every order was created and **207** (Multi-Status) when at least "
        f"one failed, `created` and `failed` counting each. A request that is not an object with 1 to "
        f"{BULK_MAX} `orders` (and at most {BULK_MAX_LINES} lines in all) is refused as a whole with 400 and "
        f"saves nothing. With an `Idempotency-Key`, "
        f"a retry gets the same results and creates nothing more.",
        request=OrderBulkCreateSerializer,
        parameters=[IDEMPOTENCY_PARAMETER],
        responses={201: OrderBulkResultSerializer, 207: OrderBulkResultSerializer, **IDEMPOTENT_ERRORS},
    )
    @action(detail=False, methods=["post"])
    @idempotent
    def bulk(self, request):
        envelope = OrderBulkCreateSerializer(data=request.data)
        envelope.is_valid(raise_exception=True)
        items = envelope.validated_data["orders"]
        context = self._entry_context(items)
        results = []
        for index, item in enumerate(items):
            try:
                order = self._create_order(item, context)
            except (serializers.ValidationError, DjangoValidationError, DomainError, IntegrityError) as exc:
                # The order's own transaction (or savepoint) is already rolled back: the others go on.
                error = self.handle_exception(exc)
                results.append({"index": index, "status": error.status_code, "errors": error.data})
            else:
                results.append({"index": index, "status": 201, "order": OrderSerializer(order, context=context).data})
        created = sum(1 for result in results if result["status"] == 201)
        body = {"results": results, "created": created, "failed": len(results) - created}
        all_created = created == len(results)
        return Response(body, status=status.HTTP_201_CREATED if all_created else status.HTTP_207_MULTI_STATUS)

    @extend_schema(
        summary="Confirm a draft order (credit control)",
        description="Refused with 409 `customer_on_hold` or `credit_limit_exceeded` (with the figures). Over the "
        "limit, a user with the override_credit_limit permission confirms with an `override_reason`.",
        request=OrderConfirmSerializer,
        parameters=[IDEMPOTENCY_PARAMETER],
        responses={200: OrderSerializer, **IDEMPOTENT_ACTION_ERRORS, 403: ErrorSerializer},
    )
    @action(detail=True, methods=["post"])
    @idempotent
    def confirm(self, request, pk=None):
        order = self.get_object()
        serializer = OrderConfirmSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        reason = serializer.validated_data.get("override_reason", "")
        return self._respond(services.order_confirm(order=order, actor=request.user, override_reason=reason))

    @extend_schema(
        summary="Mark a confirmed order fulfilled",
        request=None,
        parameters=[IDEMPOTENCY_PARAMETER],
        responses={200: OrderSerializer, **IDEMPOTENT_ACTION_ERRORS},
    )
    @action(detail=True, methods=["post"])
    @idempotent
    def fulfill(self, request, pk=None):
        return self._respond(services.order_fulfill(order=self.get_object(), actor=request.user))

    @extend_schema(
        summary="Cancel a draft or confirmed order",
        request=OrderCancelSerializer,
        parameters=[IDEMPOTENCY_PARAMETER],
        responses={200: OrderSerializer, **IDEMPOTENT_ACTION_ERRORS},
    )
    @action(detail=True, methods=["post"])
    @idempotent
    def cancel(self, request, pk=None):
        order = self.get_object()
        serializer = OrderCancelSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        reason = serializer.validated_data.get("reason", "")
        return self._respond(services.order_cancel(order=order, actor=request.user, reason=reason))
