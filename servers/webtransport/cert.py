"""The WebTransport server's certificate: self-signed, ECDSA P-256, valid for at most 14 days.

Chromium accepts a self-signed certificate for WebTransport only through
``serverCertificateHashes``, and only when it is ECDSA (not RSA) and valid for no more than
14 days (W3C WebTransport, "custom certificate requirements"). The server makes a fresh one at
every start and publishes its SHA-256 (``GET /webtransport``) for the page to pin.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import ipaddress
from dataclasses import dataclass

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

# Chromium refuses serverCertificateHashes for a certificate valid longer than 14 days.
MAX_VALIDITY = dt.timedelta(days=14)
VALIDITY = dt.timedelta(days=10)


@dataclass(frozen=True, slots=True)
class Certificate:
    """A certificate, its key, and the SHA-256 of its DER form (what a browser pins)."""

    cert: x509.Certificate
    key: ec.EllipticCurvePrivateKey

    @property
    def sha256(self) -> bytes:
        return hashlib.sha256(self.cert.public_bytes(serialization.Encoding.DER)).digest()


def self_signed(host: str = "127.0.0.1", validity: dt.timedelta = VALIDITY) -> Certificate:
    """A certificate for ``host`` (an IP or a name) and ``localhost``, from a minute ago."""
    if validity > MAX_VALIDITY:
        raise ValueError(f"validity {validity} is over Chromium's {MAX_VALIDITY} limit")
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, host)])
    try:
        san: x509.GeneralName = x509.IPAddress(ipaddress.ip_address(host))
    except ValueError:
        san = x509.DNSName(host)
    # Backdated a minute for clock skew; the whole span still fits in ``validity``.
    start = dt.datetime.now(dt.UTC) - dt.timedelta(minutes=1)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(start)
        .not_valid_after(start + validity)
        .add_extension(x509.SubjectAlternativeName([san, x509.DNSName("localhost")]), False)
        .sign(key, hashes.SHA256())
    )
    return Certificate(cert, key)
