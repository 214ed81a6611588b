"""Domain errors raised by services. The API turns them into one JSON error shape."""


class DomainError(Exception):
    """A business rule refused the action. `code` is stable for integrators."""

    code = "refused"
    status = 400

    def __init__(self, message: str, *, code: str | None = None, details: dict | None = None):
        super().__init__(message)
        self.message = message
        if code:
            self.code = code
        self.details = details or {}


class InvalidTransition(DomainError):
    """The object is not in a state that allows this action."""

    code = "invalid_state"
    status = 409


class Conflict(DomainError):
    code = "conflict"
    status = 409


class ValidationFailed(DomainError):
    code = "invalid"
    status = 400


class PermissionDenied(DomainError):
    """The actor lacks the permission this action needs (a price override, a credit override)."""

    code = "permission_denied"
    status = 403
