"""The gateway's one exception tree.

Every error the gateway raises on purpose is a :class:`GatewayError`. Subclasses say *who is at
fault*, which is what an operator and the retry policy need to know::

    GatewayError
    ├── IntakeError            the sender's data: XML refused or invalid            (not retriable)
    ├── MappingError           a mapping/code list cannot translate a document      (not retriable)
    ├── EnvelopeError          signature, decryption, recipient, time window, replay (not retriable)
    ├── TransportError         Kafka / network / broker infrastructure              (retriable)
    ├── AuditIntegrityError    the audit log does not verify                        (not retriable)
    └── ConfigError            the operator's configuration or environment          (not retriable)

Each instance carries a stable ``code`` (e.g. ``XML_DOCTYPE_FORBIDDEN``, ``ENV-7 SIGNATURE_INVALID``)
that scripts may match on, and a ``retriable`` flag, so the retry rule is one line::

    retry_if_exception(lambda e: isinstance(e, GatewayError) and e.retriable)

``diagnostics()`` renders a text for operators that says what happened and what to do about it.
"""

from __future__ import annotations

from typing import ClassVar

__all__ = [
    "AuditIntegrityError",
    "ConfigError",
    "EnvelopeError",
    "GatewayError",
    "IntakeError",
    "MappingError",
    "TransportError",
]


class GatewayError(Exception):
    """Root of every error the gateway raises on purpose."""

    default_code: ClassVar[str] = "GATEWAY_ERROR"
    default_retriable: ClassVar[bool] = False
    fault: ClassVar[str] = "gateway"

    def __init__(
        self,
        message: str,
        *,
        code: str | None = None,
        retriable: bool | None = None,
        hint: str | None = None,
    ) -> None:
        super().__init__(message)
        self.message = message
        self.code: str = code if code is not None else self.default_code
        self.retriable: bool = self.default_retriable if retriable is None else retriable
        self.hint = hint

    def __str__(self) -> str:
        return f"{self.code}: {self.message}"

    def diagnostics(self) -> str:
        """A multi-line text for an operator: what failed, whose fault, what to do."""
        lines = [f"error: {self.code}: {self.message}", f"  fault: {self.fault}"]
        if self.retriable:
            lines.append("  this error is transient; the gateway retries it")
        if self.hint:
            lines.append(f"  what to do: {self.hint}")
        return "\n".join(lines)


class IntakeError(GatewayError):
    """The sender's document was refused (hostile, malformed or schema-invalid XML)."""

    default_code = "INTAKE_INVALID"
    fault = "sender's data"


class MappingError(GatewayError):
    """A document could not be translated into the agreed schema."""

    default_code = "MAPPING_FAILED"
    fault = "mapping or code list"


class EnvelopeError(GatewayError):
    """An envelope could not be sealed or opened (crypto, trust, time window, replay)."""

    default_code = "ENVELOPE_INVALID"
    fault = "envelope / counterpart"


class TransportError(GatewayError):
    """Kafka or network infrastructure failed; usually transient."""

    default_code = "TRANSPORT_FAILED"
    default_retriable = True
    fault = "infrastructure"


class AuditIntegrityError(GatewayError):
    """The audit log, a proof or a checkpoint does not verify."""

    default_code = "AUDIT_INTEGRITY"
    fault = "audit log integrity"


class ConfigError(GatewayError):
    """The operator's configuration or the machine's environment is not usable."""

    default_code = "CONFIG_INVALID"
    fault = "configuration / environment"
