"""Private keys at rest: PKCS#8 ``EncryptedPrivateKeyInfo`` with PBES2 = scrypt + AES-256-CBC (RFC 8018, RFC 7914 §7).

``cryptography``'s ``BestAvailableEncryption`` writes PBES2 with PBKDF2-HMAC-SHA256 at 2,048 iterations,
which is cheap to brute-force for a human passphrase. We write the same standard container with scrypt
(N=2^14, r=8, p=1: 16 MiB, the parameters OpenSSL accepts by default), so ``openssl pkey`` and
``cryptography.load_pem_private_key`` read the files unchanged. Only the writing is ours; reading is
``cryptography``'s. See docs/adr/0201-private-keys-pkcs8-scrypt.md.
"""

from __future__ import annotations

import base64
import os

from cryptography.hazmat.primitives import padding, serialization
from cryptography.hazmat.primitives.asymmetric.ec import EllipticCurvePrivateKey
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PrivateKey
from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes
from cryptography.hazmat.primitives.kdf.scrypt import Scrypt

__all__ = ["SCRYPT_N", "SCRYPT_P", "SCRYPT_R", "encrypt_private_key_pem"]

SCRYPT_N = 1 << 14
SCRYPT_R = 8
SCRYPT_P = 1

_OID_PBES2 = "1.2.840.113549.1.5.13"
_OID_SCRYPT = "1.3.6.1.4.1.11591.4.11"
_OID_AES256_CBC = "2.16.840.1.101.3.4.1.42"


def _len(n: int) -> bytes:
    if n < 0x80:
        return bytes([n])
    raw = n.to_bytes((n.bit_length() + 7) // 8, "big")
    return bytes([0x80 | len(raw)]) + raw


def _tlv(tag: int, value: bytes) -> bytes:
    return bytes([tag]) + _len(len(value)) + value


def _seq(*items: bytes) -> bytes:
    return _tlv(0x30, b"".join(items))


def _octets(value: bytes) -> bytes:
    return _tlv(0x04, value)


def _int(value: int) -> bytes:
    return _tlv(0x02, value.to_bytes(value.bit_length() // 8 + 1, "big"))


def _oid(dotted: str) -> bytes:
    arcs = [int(a) for a in dotted.split(".")]
    out = bytearray([40 * arcs[0] + arcs[1]])
    for arc in arcs[2:]:
        chunk = [arc & 0x7F]
        rest = arc >> 7
        while rest:
            chunk.append(0x80 | (rest & 0x7F))
            rest >>= 7
        out += bytes(reversed(chunk))
    return _tlv(0x06, bytes(out))


def encrypt_private_key_pem(
    key: Ed25519PrivateKey | X25519PrivateKey | EllipticCurvePrivateKey, passphrase: bytes
) -> bytes:
    """PEM ``ENCRYPTED PRIVATE KEY`` (PKCS#8, PBES2/scrypt/AES-256-CBC) of ``key``."""
    if not passphrase:
        raise ValueError("empty passphrase")
    plain = key.private_bytes(serialization.Encoding.DER, serialization.PrivateFormat.PKCS8,
                              serialization.NoEncryption())
    salt, iv = os.urandom(16), os.urandom(16)
    kek = Scrypt(salt=salt, length=32, n=SCRYPT_N, r=SCRYPT_R, p=SCRYPT_P).derive(passphrase)
    padder = padding.PKCS7(128).padder()
    padded = padder.update(plain) + padder.finalize()
    encryptor = Cipher(algorithms.AES(kek), modes.CBC(iv)).encryptor()
    ciphertext = encryptor.update(padded) + encryptor.finalize()
    der = _seq(
        _seq(
            _oid(_OID_PBES2),
            _seq(
                _seq(_oid(_OID_SCRYPT), _seq(_octets(salt), _int(SCRYPT_N), _int(SCRYPT_R), _int(SCRYPT_P), _int(32))),
                _seq(_oid(_OID_AES256_CBC), _octets(iv)),
            ),
        ),
        _octets(ciphertext),
    )
    b64 = base64.encodebytes(der).replace(b"\n", b"")
    lines = [b64[i : i + 64] for i in range(0, len(b64), 64)]
    return b"-----BEGIN ENCRYPTED PRIVATE KEY-----\n" + b"\n".join(lines) + b"\n-----END ENCRYPTED PRIVATE KEY-----\n"
