"""Errors of the audit part (subclasses of the gateway's tree)."""

from __future__ import annotations

from xborder_gateway.errors import AuditIntegrityError, GatewayError

__all__ = ["AuditNotFoundError", "AuditVerificationError"]


class AuditVerificationError(AuditIntegrityError):
    """``verify`` found the log altered; ``entry_index`` names the first bad entry when one can be named."""

    default_code = "AUDIT_VERIFY_FAILED"

    def __init__(self, message: str, *, entry_index: int | None = None, code: str | None = None,
                 hint: str | None = None) -> None:
        super().__init__(message, code=code, hint=hint)
        self.entry_index = entry_index


class AuditNotFoundError(GatewayError):
    """The requested entry, size or checkpoint does not exist (the request's fault, not the log's)."""

    default_code = "AUDIT_NOT_FOUND"
    fault = "request"
