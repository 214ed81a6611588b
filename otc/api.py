"""API plumbing shared by every app: pagination and the single JSON error shape."""

from django.core.exceptions import ValidationError as DjangoValidationError
from django.db import IntegrityError
from django.http import Http404
from rest_framework import exceptions, status
from rest_framework.pagination import PageNumberPagination
from rest_framework.response import Response
from rest_framework.views import exception_handler as drf_exception_handler

from billing.errors import DomainError


class Pagination(PageNumberPagination):
    page_size_query_param = "page_size"
    max_page_size = 500


def _error(code: str, message: str, details=None, http_status=400, headers=None):
    return Response({"code": code, "message": message, "details": details or {}}, status=http_status, headers=headers)


def exception_handler(exc, context):
    """Every error is JSON: {"code", "message", "details"} with per-field details where known."""
    if isinstance(exc, DomainError):
        return _error(exc.code, exc.message, exc.details, exc.status)
    if isinstance(exc, DjangoValidationError):
        details = exc.message_dict if hasattr(exc, "error_dict") else {"non_field_errors": exc.messages}
        return _error("invalid", "The request is not valid.", details)
    if isinstance(exc, IntegrityError):
        return _error("conflict", "The change conflicts with existing data.", {}, status.HTTP_409_CONFLICT)
    response = drf_exception_handler(exc, context)
    if response is None:
        return None
    if isinstance(exc, exceptions.ValidationError):
        data = response.data if isinstance(response.data, dict) else {"non_field_errors": response.data}
        return _error("invalid", "The request is not valid; see details.", data, response.status_code)
    if isinstance(exc, Http404 | exceptions.NotFound):
        return _error("not_found", "Not found.", {}, 404)
    code = getattr(exc, "default_code", "error")
    detail = response.data.get("detail", "") if isinstance(response.data, dict) else str(response.data)
    return _error(str(code), str(detail), {}, response.status_code, headers=response.headers)
