"""TLS for the gRPC connections: coordinators serve it (and may ask for client certificates),
workers, the CLI and the SDK connect with it. Certificates and keys come from PEM files."""

from __future__ import annotations

import os
from pathlib import Path

import grpc


def _read(path: str) -> bytes | None:
    return Path(path).read_bytes() if path else None


def server_credentials(cert_file: str, key_file: str, client_ca_file: str = "") -> grpc.ServerCredentials | None:
    """TLS with the certificate and key; with `client_ca_file`, every caller must present a
    certificate it signed (mutual TLS). None without a certificate (plaintext)."""
    if not cert_file and not key_file:
        if client_ca_file:
            raise ValueError("a client CA needs the coordinator's own certificate and key (tls_cert_file, tls_key_file)")
        return None
    if not (cert_file and key_file):
        raise ValueError("TLS needs both tls_cert_file and tls_key_file")
    client_ca = _read(client_ca_file)
    return grpc.ssl_server_credentials(
        [(Path(key_file).read_bytes(), Path(cert_file).read_bytes())],
        root_certificates=client_ca,
        require_client_auth=client_ca is not None,
    )


def channel_credentials(ca_file: str = "", cert_file: str = "", key_file: str = "") -> grpc.ChannelCredentials | None:
    """TLS trusting `ca_file` (the system's roots when empty but a client certificate is
    given), presenting the client certificate if given. None when nothing is given
    (plaintext)."""
    if not (ca_file or cert_file or key_file):
        return None
    if bool(cert_file) != bool(key_file):
        raise ValueError("a client certificate needs both its certificate and key file")
    return grpc.ssl_channel_credentials(
        root_certificates=_read(ca_file), private_key=_read(key_file), certificate_chain=_read(cert_file)
    )


def channel_credentials_from_env() -> grpc.ChannelCredentials | None:
    """channel_credentials from $HOURGLASS_TLS_CA_FILE, _CLIENT_CERT_FILE, _CLIENT_KEY_FILE."""
    env = os.environ
    return channel_credentials(env.get("HOURGLASS_TLS_CA_FILE", ""), env.get("HOURGLASS_TLS_CLIENT_CERT_FILE", ""),
                               env.get("HOURGLASS_TLS_CLIENT_KEY_FILE", ""))  # fmt: skip
