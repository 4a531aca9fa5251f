"""Bearer tokens and permissions: who a caller is (real pyjwt, real keys) and what each RPC needs."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from pathlib import Path

import jwt
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa

from hourglass import cli
from hourglass_coordinator.access import NEEDS, denial, unsecured_exposure
from hourglass_core.auth import Caller, Role, TrustedKeys, Unauthenticated, Verifier, mint
from hourglass_pb.v1 import jobs_pb2 as pb

NOW = datetime.now(UTC)
HOUR = timedelta(hours=1)


@pytest.fixture
def secret_file(tmp_path: Path) -> str:
    path = tmp_path / "secret"
    path.write_text("s" * 40)
    return str(path)


def _pem_pair(tmp_path: Path, key: rsa.RSAPrivateKey | ec.EllipticCurvePrivateKey, name: str) -> tuple[str, str]:
    private = tmp_path / f"{name}.key"
    private.write_bytes(key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                          serialization.NoEncryption()))  # fmt: skip
    public = tmp_path / f"{name}.pub"
    public.write_bytes(key.public_key().public_bytes(serialization.Encoding.PEM,
                                                     serialization.PublicFormat.SubjectPublicKeyInfo))  # fmt: skip
    return str(private), str(public)


def test_roles_include_the_lower_ones_and_a_star_grants_every_namespace() -> None:
    writer = Caller("svc", frozenset({"billing:write", "*:read"}))
    assert writer.may("billing", Role.READ) and writer.may("billing", Role.WRITE)
    assert not writer.may("billing", Role.ADMIN)
    assert writer.may("ops", Role.READ) and not writer.may("ops", Role.WRITE)
    assert not writer.may("*", Role.WRITE)  # a grant in one namespace is not one in all
    assert not writer.is_worker and Caller("w", frozenset({"cluster:worker"})).is_worker
    assert not Caller("w", frozenset({"cluster:worker"})).may("cluster", Role.READ)


def test_a_hs256_token_names_its_caller_and_its_grants(secret_file: str) -> None:
    verifier = Verifier(TrustedKeys.load(secret_file=secret_file) or TrustedKeys())
    token = mint(secret_file, "svc", ["billing:write"], HOUR, NOW, secret=True)
    assert verifier.caller(f"Bearer {token}") == Caller("svc", frozenset({"billing:write"}))


@pytest.mark.parametrize("kind", ["rsa", "ec"])
def test_rs256_and_es256_tokens_verify_with_the_public_key_or_a_jwks(tmp_path: Path, kind: str) -> None:
    key = rsa.generate_private_key(65537, 2048) if kind == "rsa" else ec.generate_private_key(ec.SECP256R1())
    private, public = _pem_pair(tmp_path, key, kind)
    token = mint(private, "svc", ["*:read"], HOUR, NOW, secret=False)
    assert jwt.get_unverified_header(token)["alg"] == ("RS256" if kind == "rsa" else "ES256")
    assert Verifier(TrustedKeys.load(public_key_file=public) or TrustedKeys()).caller(f"Bearer {token}").subject == "svc"
    jwk = json.loads(jwt.algorithms.get_default_algorithms()[jwt.get_unverified_header(token)["alg"]].to_jwk(key.public_key()))
    jwks = tmp_path / "jwks.json"
    jwks.write_text(json.dumps({"keys": [{**jwk, "kid": "k1", "alg": jwt.get_unverified_header(token)["alg"]}]}))
    assert Verifier(TrustedKeys.load(jwks_file=str(jwks)) or TrustedKeys()).caller(f"bearer {token}").subject == "svc"


def test_no_files_means_authentication_is_off() -> None:
    assert TrustedKeys.load() is None


def test_a_short_secret_is_refused(tmp_path: Path) -> None:
    short = tmp_path / "short"
    short.write_text("too-short")
    with pytest.raises(ValueError, match="shorter than 32 bytes"):
        TrustedKeys.load(secret_file=str(short))


def _refusal(verifier: Verifier, authorization: str | None) -> str:
    with pytest.raises(Unauthenticated) as refused:
        verifier.caller(authorization)
    return str(refused.value)


def test_missing_malformed_expired_or_badly_signed_tokens_are_unauthenticated(secret_file: str, tmp_path: Path) -> None:
    verifier = Verifier(TrustedKeys.load(secret_file=secret_file) or TrustedKeys())
    other = tmp_path / "other"
    other.write_text("o" * 40)
    assert "no bearer token" in _refusal(verifier, None)
    assert "not 'Bearer <token>'" in _refusal(verifier, "Basic dXNlcjpwYXNz")
    assert "not a JWT" in _refusal(verifier, "Bearer not-a-jwt")
    expired = mint(secret_file, "svc", ["a:read"], HOUR, NOW - 2 * HOUR, secret=True)
    assert "expired" in _refusal(verifier, f"Bearer {expired}")
    forged = mint(str(other), "svc", ["*:admin"], HOUR, NOW, secret=True)
    assert "does not verify" in _refusal(verifier, f"Bearer {forged}")
    unsigned = jwt.encode({"sub": "svc", "exp": NOW + HOUR, "permissions": ["*:admin"]}, "", algorithm="none")
    assert "'none'" in _refusal(verifier, f"Bearer {unsigned}")
    no_expiry = jwt.encode({"sub": "svc", "permissions": []}, "s" * 40, algorithm="HS256")
    assert "exp" in _refusal(verifier, f"Bearer {no_expiry}")
    bad_claim = jwt.encode({"sub": "svc", "exp": NOW + HOUR, "permissions": "*:admin"}, "s" * 40, algorithm="HS256")
    assert "not a list of strings" in _refusal(verifier, f"Bearer {bad_claim}")


def test_every_job_service_rpc_has_its_needs_listed() -> None:
    served = {m.name for m in pb.DESCRIPTOR.services_by_name["JobService"].methods}
    assert served == set(NEEDS)


def test_requests_are_checked_against_the_namespaces_they_name() -> None:
    reader = Caller("r", frozenset({"billing:read"}))
    role, namespaces = NEEDS["SubmitJobs"]
    both = pb.SubmitJobsRequest(jobs=[pb.JobSpec(namespace="billing"), pb.JobSpec(namespace="ops")])
    assert namespaces(both) == ["billing", "ops"]
    assert denial(reader, role, namespaces(both)) == "r has no write permission in namespace 'billing'"
    role, namespaces = NEEDS["GetJob"]
    assert denial(reader, role, namespaces(pb.GetJobRequest(namespace="billing"))) is None
    assert denial(reader, role, namespaces(pb.GetJobRequest())) is not None  # "" is "default"
    role, namespaces = NEEDS["GetRun"]
    assert namespaces(pb.GetRunRequest(run_id="billing:job-1:20270101T000000.000000Z:1")) == ["billing"]
    assert denial(reader, role, namespaces(pb.GetRunRequest(run_id="8d1e0c1e-legacy"))) is not None
    role, namespaces = NEEDS["PreviewSchedule"]
    assert namespaces(pb.PreviewScheduleRequest()) == []  # a bare trigger: no namespace's data


def test_a_namespace_policy_is_set_by_its_admins_and_read_by_its_readers() -> None:
    set_role, set_namespaces = NEEDS["SetNamespacePolicy"]
    get_role, get_namespaces = NEEDS["GetNamespacePolicy"]
    request = pb.SetNamespacePolicyRequest(namespace="billing", allowed_executors=["echo"])
    writer = Caller("w", frozenset({"billing:write"}))
    assert denial(writer, set_role, set_namespaces(request)) == "w has no admin permission in namespace 'billing'"
    assert denial(Caller("a", frozenset({"billing:admin"})), set_role, set_namespaces(request)) is None
    assert denial(Caller("a", frozenset({"ops:admin"})), set_role, set_namespaces(request)) is not None
    assert denial(Caller("a", frozenset({"billing:admin"})), set_role, set_namespaces(pb.SetNamespacePolicyRequest())) is not None
    reader = Caller("r", frozenset({"billing:read"}))
    assert denial(reader, get_role, get_namespaces(pb.GetNamespacePolicyRequest(namespace="billing"))) is None


@pytest.mark.parametrize("method", ["ListWorkers", "GetWorker", "GetShardMap", "ListCoordinators"])
def test_reads_of_the_cluster_itself_need_read_in_every_namespace(method: str) -> None:
    role, namespaces = NEEDS[method]
    request = getattr(pb, pb.DESCRIPTOR.services_by_name["JobService"].methods_by_name[method].input_type.name)()
    assert denial(Caller("r", frozenset({"billing:admin"})), role, namespaces(request)) == (
        "r has no read permission in every namespace")
    assert denial(Caller("ops", frozenset({"*:read"})), role, namespaces(request)) is None
    assert denial(Caller("w", frozenset({"cluster:worker"})), role, namespaces(request)) is not None


def test_token_create_prints_a_token_the_coordinator_accepts(
    secret_file: str, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("HOURGLASS_AUTH_SECRET_FILE", secret_file)
    argv = ["token", "create", "--namespace", "billing", "--namespace", "ops", "--role", "write", "--worker",
            "--subject", "etl-*", "--ttl", "2h"]  # fmt: skip
    assert cli.main(argv) == 0
    token = capsys.readouterr().out.strip()
    caller = Verifier(TrustedKeys.load(secret_file=secret_file) or TrustedKeys()).caller(f"Bearer {token}")
    assert caller.grants == {"billing:write", "ops:write", "cluster:worker"}
    assert caller.subject == "etl-*"
    # A worker token names the workers it is for: no default subject for one.
    assert cli.main(["token", "create", "--worker"]) == cli.EXIT_INVALID
    assert "--subject" in capsys.readouterr().err
    monkeypatch.delenv("HOURGLASS_AUTH_SECRET_FILE")
    assert cli.main(["token", "create", "--namespace", "billing"]) == cli.EXIT_INVALID
    assert "HOURGLASS_AUTH_SECRET_FILE" in capsys.readouterr().err


@pytest.mark.parametrize(("listen", "tls", "tokens", "refused"), [
    ("127.0.0.1:7070", False, False, False),
    ("localhost:7070", False, False, False),
    ("[::1]:7070", False, False, False),
    ("0.0.0.0:7070", False, False, True),
    ("[::]:7070", True, False, True),
    ("10.0.0.5:7070", False, True, True),
    ("coordinator.internal:7070", True, True, False),
    ("0.0.0.0:7070", True, True, False),
])  # fmt: skip
def test_listening_beyond_loopback_needs_tls_and_tokens(listen: str, tls: bool, tokens: bool, refused: bool) -> None:
    why = unsecured_exposure(listen, tls, tokens)
    assert (why is not None) == refused
    if why is not None:
        assert "--insecure" in why and listen in why


def test_a_coordinator_asked_to_listen_on_every_interface_unsecured_refuses_to_start(
    capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    argv = ["coordinator", "--listen", "0.0.0.0:0", "--store", f"sqlite:///{tmp_path / 'x.db'}", "--coordination", "memory://"]
    assert cli.main(argv) == cli.EXIT_INVALID
    assert "without TLS and bearer tokens" in capsys.readouterr().err


def test_a_verified_token_is_remembered_until_it_expires_and_a_tampered_one_is_not(secret_file: str) -> None:
    class Counting(Verifier):
        checks = 0

        def _verified(self, token: str) -> dict[str, object]:
            Counting.checks += 1
            return super()._verified(token)

    minted = datetime.now(UTC)  # not NOW, read at import: the suite may run for longer than the token lives
    now = [minted.timestamp()]
    verifier = Counting(TrustedKeys.load(secret_file=secret_file) or TrustedKeys(), clock=lambda: now[0])
    token = mint(secret_file, "svc", ["billing:read"], timedelta(minutes=5), minted, secret=True)
    first = verifier.caller(f"Bearer {token}")
    assert verifier.caller(f"Bearer {token}") is first and Counting.checks == 1  # from memory
    head, payload, signature = token.split(".")
    assert "signature" in _refusal(verifier, f"Bearer {head}.{payload}.{signature[:-4]}AAAA")
    now[0] += 5 * 60 + 31  # past exp and the leeway: verified again (and refused once really expired)
    verifier.caller(f"Bearer {token}")
    assert Counting.checks == 3
