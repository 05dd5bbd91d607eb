"""The one boundary to aiokafka's exceptions: everything it raises leaves here as a TransportError."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

from aiokafka import errors as kafka_errors

from xborder_gateway.errors import TransportError

__all__ = ["TransportFencedError", "kafka_boundary", "translate"]

_HINT = "check that the broker runs (`xborder kafka status`) and that XBG_KAFKA_BOOTSTRAP names it"


class TransportFencedError(TransportError):
    """Another instance with the same transactional id took over; this one must stop."""

    default_code = "TRANSPORT_FENCED"
    default_retriable = False


def translate(exc: BaseException, operation: str) -> TransportError:  # noqa: PLR0911 - one return per class
    """Turn an aiokafka exception into a :class:`TransportError` carrying aiokafka's retriable flag."""
    if isinstance(exc, TransportError):
        return exc
    name = type(exc).__name__
    if isinstance(exc, kafka_errors.ProducerFenced | kafka_errors.InvalidProducerEpoch):
        return TransportFencedError(
            f"{operation}: producer fenced ({name})",
            hint="two instances share one --instance id; give each instance its own",
        )
    if isinstance(exc, kafka_errors.KafkaConnectionError | kafka_errors.NoBrokersAvailable):
        return TransportError(f"{operation}: broker unreachable ({name}: {exc})", code="TRANSPORT_UNREACHABLE",
                              retriable=True, hint=_HINT)
    if isinstance(exc, kafka_errors.KafkaTimeoutError | TimeoutError):
        return TransportError(f"{operation}: timed out ({name})", code="TRANSPORT_TIMEOUT", retriable=True,
                              hint=_HINT)
    if isinstance(exc, kafka_errors.RecordTooLargeError | kafka_errors.MessageSizeTooLargeError):
        return TransportError(f"{operation}: record too large ({name})", code="TRANSPORT_RECORD_TOO_LARGE",
                              retriable=False, hint="raise the broker's message.max.bytes or send smaller documents")
    if isinstance(exc, kafka_errors.KafkaError):
        retriable = bool(getattr(exc, "retriable", False))
        return TransportError(f"{operation}: {name}: {exc}", code=f"TRANSPORT_{name.upper()}", retriable=retriable,
                              hint=_HINT if retriable else None)
    if isinstance(exc, OSError):
        return TransportError(f"{operation}: {name}: {exc}", code="TRANSPORT_OS", retriable=True, hint=_HINT)
    return TransportError(f"{operation}: unexpected {name}: {exc}", code="TRANSPORT_UNEXPECTED", retriable=True)


@contextmanager
def kafka_boundary(operation: str) -> Iterator[None]:
    """``with kafka_boundary("send"): await producer.send(...)`` -- aiokafka errors become TransportError."""
    try:
        yield
    except TransportError:
        raise
    except (kafka_errors.KafkaError, OSError, TimeoutError) as exc:
        raise translate(exc, operation) from exc
