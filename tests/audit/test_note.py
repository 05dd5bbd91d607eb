"""C2SP signed notes and checkpoints: the Go reference vector, strict parsing, wrong keys rejected."""

from __future__ import annotations

import base64

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from xborder_gateway.audit import Checkpoint, NoteSigner, NoteVerifier
from xborder_gateway.audit.note import open_note, sign_note
from xborder_gateway.errors import AuditIntegrityError

# golang.org/x/mod/sumdb/note's documented example (an independent implementation of the format).
GO_SIGNER = "PRIVATE+KEY+PeterNeumann+c74f20a3+AYEKFALVFGyNhPJEMzD1QIDr+Y7hfZx09iUvxdXHKDFz"
GO_VERIFIER = "PeterNeumann+c74f20a3+ARpc2QcUPDhMQegwxbzhKqiBfsVkmqq/LDE4izWy10TW"
GO_TEXT = "If you think cryptography is the answer to your problem,\nthen you don't know what your problem is.\n"
GO_SIG = "x08go/ZJkuBS9UG/SffcvIAQxVBtiFupLLr8pAcElZInNIuGUgYN1FFYC2pZSNXgKvqfqdngotpRZb6KE6RyyBwJnAM="
GO_NOTE = GO_TEXT + "\n\u2014 PeterNeumann " + GO_SIG + "\n"

ORIGIN = "xborder-gateway.local/audit/vn"
ROOT = bytes.fromhex("5dc9da79a70659a9ad559cb701ded9a2ab9d823aad2f4960cfe370eff4604328")


def go_signer() -> NoteSigner:
    seed = base64.b64decode(GO_SIGNER.split("+", 4)[4])
    assert seed[0] == 1
    return NoteSigner("PeterNeumann", Ed25519PrivateKey.from_private_bytes(seed[1:]))


def new_signer(name: str = ORIGIN) -> NoteSigner:
    return NoteSigner(name, Ed25519PrivateKey.generate())


def test_go_reference_note_is_reproduced_byte_for_byte() -> None:
    signer = go_signer()
    assert str(signer.verifier) == GO_VERIFIER
    assert sign_note(GO_TEXT, signer) == GO_NOTE
    assert open_note(GO_NOTE, NoteVerifier.parse(GO_VERIFIER)) == GO_TEXT


def test_verifier_key_round_trip() -> None:
    verifier = new_signer().verifier
    assert NoteVerifier.parse(str(verifier)) == verifier
    assert str(verifier).startswith(ORIGIN + "+")


@pytest.mark.parametrize(
    "vkey",
    [
        pytest.param("PeterNeumann+c74f20a4+ARpc2QcUPDhMQegwxbzhKqiBfsVkmqq/LDE4izWy10TW", id="wrong key hash"),
        pytest.param("PeterNeumanm+c74f20a3+ARpc2QcUPDhMQegwxbzhKqiBfsVkmqq/LDE4izWy10TW", id="other name"),
        pytest.param("PeterNeumann+c74f20a3+ARpc2QcUPDhMQegwxbzhKqiBfsVkmqq/LDE4izWy10TX", id="key bit changed"),
        pytest.param("PeterNeumann+c74f20a3+Apc2QcUPDhMQegwxbzhKqiBfsVkmqq/LDE4izWy10TW", id="short key"),
        pytest.param("PeterNeumann+c74f20a3+AhpcMQegwxbzhKqiBfsVkmqq/LDE4izWy10TWAAAAAAA", id="other algorithm"),
        pytest.param("PeterNeumann+C74F20A3+ARpc2QcUPDhMQegwxbzhKqiBfsVkmqq/LDE4izWy10TW", id="uppercase hash"),
        pytest.param("PeterNeumann+c74f20a3", id="no key"),
        pytest.param("Peter Neumann+c74f20a3+ARpc2QcUPDhMQegwxbzhKqiBfsVkmqq/LDE4izWy10TW", id="space in name"),
        pytest.param("+c74f20a3+ARpc2QcUPDhMQegwxbzhKqiBfsVkmqq/LDE4izWy10TW", id="empty name"),
        pytest.param("", id="empty"),
    ],
)
def test_malformed_verifier_keys_rejected(vkey: str) -> None:
    with pytest.raises(AuditIntegrityError) as info:
        NoteVerifier.parse(vkey)
    assert info.value.code == "NOTE_KEY_INVALID"


def _signed_checkpoint(signer: NoteSigner, size: int = 8) -> str:
    return sign_note(Checkpoint(ORIGIN, size, ROOT).to_text(), signer)


def test_checkpoint_round_trip() -> None:
    signer = new_signer()
    note = _signed_checkpoint(signer)
    assert note.startswith(f"{ORIGIN}\n8\n{base64.b64encode(ROOT).decode()}\n\n\u2014 {ORIGIN} ")
    cp = Checkpoint.open(note, signer.verifier)
    assert (cp.origin, cp.size, cp.root) == (ORIGIN, 8, ROOT)


def test_checkpoint_signed_by_another_key_is_rejected() -> None:
    trusted, impostor = new_signer(), new_signer()  # same name, different key
    note = _signed_checkpoint(impostor)
    with pytest.raises(AuditIntegrityError) as info:
        Checkpoint.open(note, trusted.verifier)
    assert info.value.code == "NOTE_UNKNOWN_SIGNER"


def test_forged_signature_under_the_right_key_hash_is_rejected() -> None:
    trusted, impostor = new_signer(), new_signer()
    text = Checkpoint(ORIGIN, 8, ROOT).to_text()
    sig = impostor.private_key.sign(text.encode())
    forged = text + f"\n\u2014 {ORIGIN} " + base64.b64encode(trusted.verifier.key_hash + sig).decode() + "\n"
    with pytest.raises(AuditIntegrityError) as info:
        Checkpoint.open(forged, trusted.verifier)
    assert info.value.code == "NOTE_SIGNATURE_INVALID"


def test_other_signers_are_ignored_but_ours_is_required() -> None:
    ours, witness = new_signer(), new_signer("witness.example/w1")
    note = _signed_checkpoint(ours)
    cosigned = note + witness.signature_line(Checkpoint(ORIGIN, 8, ROOT).to_text())
    assert Checkpoint.open(cosigned, ours.verifier).size == 8
    with pytest.raises(AuditIntegrityError):
        Checkpoint.open(cosigned, new_signer().verifier)


HOSTILE_NOTES = {
    "size changed": lambda n: n.replace("\n8\n", "\n9\n", 1),
    "origin changed": lambda n: n.replace("audit/vn", "audit/cn", 1),
    "root changed": lambda n: n.replace(base64.b64encode(ROOT).decode(), base64.b64encode(bytes(32)).decode(), 1),
    "no blank line": lambda n: n.replace("\n\n", "\n", 1),
    "no final newline": lambda n: n[:-1],
    "signature truncated": lambda n: n[:-6] + "\n",
    "signature line without em dash": lambda n: n.replace("\u2014 ", "- ", 1),
    "extra signature garbage": lambda n: n + "\u2014 x !!!\n",
    "not utf-8": lambda n: n.encode("utf-8")[:-3] + b"\xff\xfe\n",
    "empty": lambda n: "",
    "huge": lambda n: n + ("\u2014 a " + "A" * 88 + "\n") * 2000,
}


@pytest.mark.parametrize("name", list(HOSTILE_NOTES))
def test_hostile_checkpoint_notes_rejected(name: str) -> None:
    signer = new_signer()
    note = HOSTILE_NOTES[name](_signed_checkpoint(signer))
    with pytest.raises(AuditIntegrityError):
        Checkpoint.open(note, signer.verifier)


@pytest.mark.parametrize(
    "text",
    [
        pytest.param("origin\n8\n", id="no root"),
        pytest.param("origin\n08\nXcnaeacGWamtVZy3Ad7ZoqudgjqtL0lgz+Nw7/RgQyg=\n", id="leading zero"),
        pytest.param("origin\n-8\nXcnaeacGWamtVZy3Ad7ZoqudgjqtL0lgz+Nw7/RgQyg=\n", id="negative size"),
        pytest.param("origin\n8\nXcnaeacGWamtVZy3Ad7ZoqudgjqtL0lgz+Nw7/RgQyg\n", id="root not padded"),
        pytest.param("origin\n8\nXcnaeacGWamtVZy3Ad7ZoqudgjqtL0lgz+Nw7/Rg\n", id="short root"),
        pytest.param("\n8\nXcnaeacGWamtVZy3Ad7ZoqudgjqtL0lgz+Nw7/RgQyg=\n", id="empty origin"),
        pytest.param("origin\n8\nXcnaeacGWamtVZy3Ad7ZoqudgjqtL0lgz+Nw7/RgQyg=\n\n", id="empty extension line"),
    ],
)
def test_checkpoint_body_parsing_is_strict(text: str) -> None:
    with pytest.raises(AuditIntegrityError):
        Checkpoint.parse(text)


def test_checkpoint_body_with_extension_parses() -> None:
    cp = Checkpoint.parse("origin\n8\nXcnaeacGWamtVZy3Ad7ZoqudgjqtL0lgz+Nw7/RgQyg=\nsome extension\n")
    assert cp.root == ROOT
    assert cp.extensions == ("some extension",)
