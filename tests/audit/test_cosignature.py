"""C2SP cosignature/v1: key format, signed message, signature line, and what a verifier refuses."""

from __future__ import annotations

import base64
import hashlib
import struct

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from xborder_gateway.audit import NoteSigner, NoteVerifier
from xborder_gateway.audit.cosignature import (
    CosignatureSigner,
    CosignatureVerifier,
    add_signature_lines,
    signed_message,
    verify_cosignature,
)
from xborder_gateway.audit.note import Checkpoint, open_note, sign_note
from xborder_gateway.errors import AuditIntegrityError

TEXT = Checkpoint("example.com/log", 20852163, bytes(range(32))).to_text()


@pytest.fixture
def log_signer() -> NoteSigner:
    return NoteSigner("example.com/log", Ed25519PrivateKey.generate())


@pytest.fixture
def witness() -> CosignatureSigner:
    return CosignatureSigner("witness.example/w1", Ed25519PrivateKey.generate())


def test_verifier_key_is_type_0x04_with_the_spec_key_id(witness: CosignatureSigner) -> None:
    v = witness.verifier
    name, hash_hex, b64 = str(v).split("+", 2)
    raw = base64.b64decode(b64)
    assert name == "witness.example/w1"
    assert raw[0] == 0x04
    assert hash_hex == hashlib.sha256(name.encode() + b"\n\x04" + raw[1:]).digest()[:4].hex()
    assert CosignatureVerifier.parse(str(v)) == v
    with pytest.raises(AuditIntegrityError):  # an 0x01 (log) key is not a cosignature key
        CosignatureVerifier.parse(str(NoteVerifier(name, raw[1:])))
    with pytest.raises(AuditIntegrityError):
        CosignatureVerifier.parse(f"{name}+00000000+{b64}")


def test_signed_message_is_header_time_and_body() -> None:
    assert signed_message(TEXT, 1679315147) == (
        b"cosignature/v1\ntime 1679315147\nexample.com/log\n20852163\n" + base64.b64encode(bytes(range(32))) + b"\n")
    with pytest.raises(AuditIntegrityError):
        signed_message(TEXT, 2**63)


def test_signature_line_layout(witness: CosignatureSigner) -> None:
    line = witness.cosign(TEXT, 1679315147)
    assert line.startswith("\u2014 witness.example/w1 ")
    assert line.endswith("\n")
    blob = base64.b64decode(line.split(" ")[2])
    assert len(blob) == 4 + 8 + 64
    assert blob[:4] == witness.verifier.key_hash
    assert struct.unpack(">Q", blob[4:12]) == (1679315147,)
    assert witness.verifier.verify(TEXT, 1679315147, blob[12:])
    assert not witness.verifier.verify(TEXT, 1679315148, blob[12:]), "the timestamp is signed"


def test_cosigned_note_verifies_for_both_and_log_verification_ignores_the_cosignature(
    log_signer: NoteSigner, witness: CosignatureSigner
) -> None:
    note = sign_note(TEXT, log_signer)
    cosigned = add_signature_lines(note, [witness.cosign(TEXT, 1700000000)])
    assert open_note(cosigned, log_signer.verifier) == TEXT
    assert verify_cosignature(cosigned, witness.verifier).timestamp == 1700000000
    assert add_signature_lines(cosigned, [witness.cosign(TEXT, 1700000000)]) == cosigned, "no duplicate lines"


def _flip_sig(line: str, at: int) -> str:
    name, b64 = line[2:].rstrip("\n").split(" ")
    blob = bytearray(base64.b64decode(b64))
    blob[at] ^= 1
    return f"\u2014 {name} {base64.b64encode(bytes(blob)).decode()}\n"


@pytest.mark.parametrize(("case", "code"), [
    ("tampered checkpoint body", "COSIGNATURE_INVALID"),
    ("tampered signature", "COSIGNATURE_INVALID"),
    ("tampered timestamp", "COSIGNATURE_INVALID"),
    ("another witness", "COSIGNATURE_MISSING"),
    ("future timestamp", "COSIGNATURE_INVALID"),
])
def test_verifier_refuses(case: str, code: str, log_signer: NoteSigner, witness: CosignatureSigner) -> None:
    line = witness.cosign(TEXT, 1700000000)
    text = TEXT
    now = None
    if case == "tampered checkpoint body":
        text = TEXT.replace("20852163", "20852164")
    elif case == "tampered signature":
        line = _flip_sig(line, 40)
    elif case == "tampered timestamp":
        line = _flip_sig(line, 11)
    elif case == "another witness":
        line = CosignatureSigner("witness.example/w2", Ed25519PrivateKey.generate()).cosign(TEXT, 1700000000)
    elif case == "future timestamp":
        now = 1700000000 - 3600
    note = text + "\n" + log_signer.signature_line(text) + line
    with pytest.raises(AuditIntegrityError) as info:
        verify_cosignature(note, witness.verifier, now=now)
    assert info.value.code == code


def test_same_key_other_name_is_not_the_witness(witness: CosignatureSigner) -> None:
    impostor = CosignatureSigner("witness.example/other", witness.private_key)
    note = TEXT + "\n" + impostor.cosign(TEXT, 1)
    with pytest.raises(AuditIntegrityError) as info:
        verify_cosignature(note, witness.verifier)
    assert info.value.code == "COSIGNATURE_MISSING"


def test_malformed_lines_are_refused(witness: CosignatureSigner) -> None:
    note = TEXT + "\n" + witness.cosign(TEXT, 1)
    for bad in ("no dash\n", "\u2014 a b c\n", "\u2014 a !!!!\n", "\u2014 a b\nc\n"):
        with pytest.raises(AuditIntegrityError):
            add_signature_lines(note, [bad])
    short = f"\u2014 {witness.name} {base64.b64encode(witness.verifier.key_hash + bytes(10)).decode()}\n"
    with pytest.raises(AuditIntegrityError) as info:
        verify_cosignature(TEXT + "\n" + short, witness.verifier)
    assert info.value.code == "COSIGNATURE_INVALID"
