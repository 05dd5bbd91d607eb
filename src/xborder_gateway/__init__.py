"""xborder-gateway: the customs data exchange between Viet Nam and Nanning Customs.

Public surface: the error tree and the settings. Subpackages (``intake``, ``mapping``,
``envelope``, ``audit``, ``transport``, ``connectors``) each declare their own ``__all__``.
"""

from xborder_gateway.config import Settings, load_settings
from xborder_gateway.errors import (
    AuditIntegrityError,
    ConfigError,
    EnvelopeError,
    GatewayError,
    IntakeError,
    MappingError,
    TransportError,
)

__version__ = "0.1.0"

__all__ = [
    "AuditIntegrityError",
    "ConfigError",
    "EnvelopeError",
    "GatewayError",
    "IntakeError",
    "MappingError",
    "Settings",
    "TransportError",
    "__version__",
    "load_settings",
]
