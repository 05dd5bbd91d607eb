"""Envelope errors: one class for refusals, one for replays, each with a stable rule code.

Every code starts with the rule of ``docs/envelope.md`` it implements (``ENV-7 SIGNATURE_INVALID``),
so an operator, a script and the counterpart's engineers all read the same thing.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from xborder_gateway.errors import EnvelopeError

if TYPE_CHECKING:
    from xborder_gateway.envelope._format import EnvelopeHeader

__all__ = ["EnvelopeOpenError", "EnvelopeReplayError"]


class EnvelopeOpenError(EnvelopeError):
    """``open_envelope`` refused an envelope.

    ``envelope_sha256`` is the SHA-256 of the exact bytes received (always set when the refusal came from
    ``open_envelope``); ``header`` is the header as parsed, **unverified** unless the refusal happened
    after the signature check (see ``header_verified``), or ``None`` when the header did not parse.
    A NACK receipt can name both.
    """

    def __init__(
        self,
        message: str,
        *,
        code: str,
        hint: str | None = None,
        header: EnvelopeHeader | None = None,
        header_verified: bool = False,
        envelope_sha256: bytes | None = None,
    ) -> None:
        super().__init__(message, code=code, hint=hint)
        self.header = header
        self.header_verified = header_verified
        self.envelope_sha256 = envelope_sha256

    @property
    def rule(self) -> str:
        """The rule number alone, e.g. ``ENV-7``."""
        return self.code.split(" ", 1)[0]


class EnvelopeReplayError(EnvelopeOpenError):
    """ENV-10: the message id was already processed.

    Raised only after decryption and signature verification succeeded, so ``header`` is verified.
    ``stored_sha256`` is the digest recorded for the first copy; ``code`` is ``ENV-10 REPLAYED`` when the
    bytes are the same (answer with the original receipt) and ``ENV-10 MESSAGE_ID_REUSED`` when a
    different, validly signed envelope reuses the id (a sender bug or an attack: alert, do not answer
    with the original receipt).
    """

    def __init__(
        self,
        message: str,
        *,
        code: str,
        header: EnvelopeHeader,
        stored_sha256: bytes,
        envelope_sha256: bytes,
        hint: str | None = None,
    ) -> None:
        super().__init__(
            message, code=code, hint=hint, header=header, header_verified=True, envelope_sha256=envelope_sha256
        )
        self.stored_sha256 = stored_sha256

    @property
    def same_bytes(self) -> bool:
        return self.stored_sha256 == self.envelope_sha256
