"""Checks a JobSpec before anything is written; every error names the offending field."""

from __future__ import annotations

import re
from collections.abc import Iterable, Set
from datetime import timedelta

from hourglass_core.errors import InvalidArgument
from hourglass_core.models import JobSpec, NamespacePolicy
from hourglass_core.triggers import validate_trigger

MAX_NAME = 256
MAX_LABELS = 64
MAX_LABEL_TEXT = 256
MAX_ATTEMPTS = 100
MAX_IDEMPOTENCY_KEY = 256
MAX_CATCHUP_WINDOW = timedelta(days=7)  # the schedule's retention: older fires are gone anyway
MAX_JITTER = timedelta(hours=1)
MIN_LATENESS_SLO = timedelta(milliseconds=1)
MAX_LATENESS_SLO = timedelta(days=1)
MAX_POLICY_EXECUTORS = 256
_NAMESPACE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$")
# What an executor's name may be in a namespace policy: a word a worker's configuration
# (`name=pkg.module:function`) can give, and no pattern ("*" would read as "every executor").
_EXECUTOR = re.compile(r"^[A-Za-z0-9_][A-Za-z0-9_.-]{0,127}$")


def validate_namespace(namespace: str, field: str = "namespace") -> None:
    if not _NAMESPACE.match(namespace):
        raise InvalidArgument(field, f"{namespace!r} must be 1-64 letters, digits, '_', '.' or '-'")


def validate_policy(namespace: str, allowed_executors: Iterable[str]) -> NamespacePolicy:
    """The policy an admin asked for (names once each; none: no limit). Raises
    InvalidArgument naming `namespace` or `allowed_executors[i]`."""
    validate_namespace(namespace)
    names = list(allowed_executors)
    if len(names) > MAX_POLICY_EXECUTORS:
        raise InvalidArgument("allowed_executors", f"has {len(names)} names, more than {MAX_POLICY_EXECUTORS}")
    for i, name in enumerate(names):
        if not _EXECUTOR.match(name):
            raise InvalidArgument(
                f"allowed_executors[{i}]",
                f"{name!r} is not an executor name (1-128 letters, digits, '_', '.' or '-')",
            )
    return NamespacePolicy(namespace, frozenset(names))


def validate_spec(
    spec: JobSpec,
    *,
    known_executors: Set[str],
    max_params_bytes: int,
    field: str = "job",
) -> None:
    """Raises InvalidArgument (or InvalidTrigger) naming the first wrong field."""
    validate_namespace(spec.namespace, f"{field}.namespace")
    if not spec.name.strip():
        raise InvalidArgument(f"{field}.name", "must not be empty")
    if len(spec.name) > MAX_NAME:
        raise InvalidArgument(f"{field}.name", f"is longer than {MAX_NAME} characters")
    if not spec.executor:
        raise InvalidArgument(f"{field}.executor", "must not be empty")
    if spec.executor not in known_executors:
        offered = ", ".join(sorted(known_executors)) or "none yet"
        raise InvalidArgument(
            f"{field}.executor",
            f"no worker offers executor {spec.executor!r} (offered: {offered})",
        )
    if len(spec.params.data) > max_params_bytes:
        raise InvalidArgument(
            f"{field}.params",
            f"is {len(spec.params.data)} bytes, over the limit of {max_params_bytes}",
        )
    if len(spec.idempotency_key) > MAX_IDEMPOTENCY_KEY:
        raise InvalidArgument(
            f"{field}.idempotency_key", f"is longer than {MAX_IDEMPOTENCY_KEY} characters"
        )
    _validate_labels(spec.labels, f"{field}.labels")
    _validate_options(spec, f"{field}.options")
    validate_trigger(spec.trigger, f"{field}.trigger")


def _validate_labels(labels: dict[str, str], field: str) -> None:
    if len(labels) > MAX_LABELS:
        raise InvalidArgument(field, f"has {len(labels)} labels, more than {MAX_LABELS}")
    for key, value in labels.items():
        if not key or len(key) > MAX_LABEL_TEXT or len(value) > MAX_LABEL_TEXT:
            raise InvalidArgument(
                f"{field}[{key!r}]", f"keys must be 1-{MAX_LABEL_TEXT} and values 0-{MAX_LABEL_TEXT} characters"
            )


def _validate_options(spec: JobSpec, field: str) -> None:
    options = spec.options
    if options.timeout is not None and options.timeout <= timedelta(0):
        raise InvalidArgument(f"{field}.timeout", "must be positive")
    retry = options.retry
    if not 1 <= retry.max_attempts <= MAX_ATTEMPTS:
        raise InvalidArgument(f"{field}.retry.max_attempts", f"must be 1-{MAX_ATTEMPTS}")
    if retry.initial_backoff <= timedelta(0):
        raise InvalidArgument(f"{field}.retry.initial_backoff", "must be positive")
    if retry.max_backoff < retry.initial_backoff:
        raise InvalidArgument(f"{field}.retry.max_backoff", "must not be below initial_backoff")
    if retry.multiplier < 1.0:
        raise InvalidArgument(f"{field}.retry.multiplier", "must be at least 1")
    if options.misfire_grace < timedelta(0):
        raise InvalidArgument(f"{field}.misfire_grace", "must not be negative")
    if not timedelta(seconds=1) <= options.catchup_window <= MAX_CATCHUP_WINDOW:
        raise InvalidArgument(f"{field}.catchup_window", f"must be between 1s and {MAX_CATCHUP_WINDOW}")
    if not timedelta(0) <= options.jitter <= MAX_JITTER:
        raise InvalidArgument(f"{field}.jitter", f"must be between 0 and {MAX_JITTER}")
    if options.max_fires < 0:
        raise InvalidArgument(f"{field}.max_fires", "must not be negative")
    slo = options.lateness_slo
    if slo is not None and not MIN_LATENESS_SLO <= slo <= MAX_LATENESS_SLO:
        raise InvalidArgument(f"{field}.lateness_slo", f"must be between 1ms and {MAX_LATENESS_SLO}")
