"""`hourglass certs dev DIR`: a local certificate authority and certificates signed by it, for
trying TLS out and for tests. Not for production: the CA key is written next to them."""

from __future__ import annotations

import ipaddress
import socket
from datetime import UTC, datetime, timedelta
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

VALID = timedelta(days=30)
# Who gets a certificate: the coordinator serves TLS; workers and clients present theirs.
CERTIFICATES = {"coordinator": ExtendedKeyUsageOID.SERVER_AUTH, "worker": ExtendedKeyUsageOID.CLIENT_AUTH,
                "client": ExtendedKeyUsageOID.CLIENT_AUTH}  # fmt: skip


def _name(common: str) -> x509.Name:
    return x509.Name([x509.NameAttribute(NameOID.ORGANIZATION_NAME, "Hourglass dev"),
                      x509.NameAttribute(NameOID.COMMON_NAME, common)])  # fmt: skip


def _write(directory: Path, name: str, key: ec.EllipticCurvePrivateKey, cert: x509.Certificate) -> None:
    key_path = directory / f"{name}.key"
    key_path.write_bytes(key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                           serialization.NoEncryption()))  # fmt: skip
    key_path.chmod(0o600)
    (directory / f"{name}.pem").write_bytes(cert.public_bytes(serialization.Encoding.PEM))


# The workers the dev worker certificate is for (its common name): a fleet prefix, so workers
# that present it register as hourglass-worker-<host>-<pid>-<random> (see hourglass_worker.identity).
DEV_WORKER_NAME = "hourglass-worker-*"


def write_dev_certificates(directory: Path, hosts: list[str] | None = None, worker_name: str | None = None) -> list[Path]:
    """Writes ca.pem/ca.key and coordinator, worker and client .pem/.key under `directory`;
    the coordinator's names `hosts` (default: localhost, 127.0.0.1, ::1 and this host's name),
    the worker's is `worker_name` (a coordinator with client certificates and no tokens lets
    it register only as a worker that names). Returns the certificate files."""
    directory.mkdir(parents=True, exist_ok=True)
    worker_name = worker_name or DEV_WORKER_NAME
    now = datetime.now(UTC)
    ca_key = ec.generate_private_key(ec.SECP256R1())
    ca = (
        x509.CertificateBuilder().subject_name(_name("Hourglass dev CA")).issuer_name(_name("Hourglass dev CA"))
        .public_key(ca_key.public_key()).serial_number(x509.random_serial_number())
        .not_valid_before(now - timedelta(minutes=5)).not_valid_after(now + VALID)
        .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
        .add_extension(x509.KeyUsage(digital_signature=True, key_cert_sign=True, crl_sign=True, content_commitment=False,
                                     key_encipherment=False, data_encipherment=False, key_agreement=False,
                                     encipher_only=False, decipher_only=False), critical=True)
        .sign(ca_key, hashes.SHA256())
    )  # fmt: skip
    _write(directory, "ca", ca_key, ca)
    names = hosts or ["localhost", "127.0.0.1", "::1", socket.gethostname()]
    sans: list[x509.GeneralName] = []
    for host in dict.fromkeys(names):
        try:
            sans.append(x509.IPAddress(ipaddress.ip_address(host)))
        except ValueError:
            sans.append(x509.DNSName(host))
    written = [directory / "ca.pem"]
    for name, usage in CERTIFICATES.items():
        key = ec.generate_private_key(ec.SECP256R1())
        builder = (
            x509.CertificateBuilder().subject_name(_name(worker_name if name == "worker" else f"hourglass-{name}"))
            .issuer_name(ca.subject)
            .public_key(key.public_key()).serial_number(x509.random_serial_number())
            .not_valid_before(now - timedelta(minutes=5)).not_valid_after(now + VALID)
            .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
            .add_extension(x509.ExtendedKeyUsage([usage]), critical=False)
        )  # fmt: skip
        if usage == ExtendedKeyUsageOID.SERVER_AUTH:
            builder = builder.add_extension(x509.SubjectAlternativeName(sans), critical=False)
        _write(directory, name, key, builder.sign(ca_key, hashes.SHA256()))
        written.append(directory / f"{name}.pem")
    return written
