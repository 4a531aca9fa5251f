"""Per-namespace executor policies: what a policy allows, which names it takes, and the
refusal both the coordinator (at submit) and the workers (before a call) give."""

from __future__ import annotations

import asyncio

import pytest

from hourglass_core.errors import InvalidArgument, Unavailable
from hourglass_core.models import NamespacePolicy
from hourglass_core.validation import MAX_POLICY_EXECUTORS, validate_policy
from hourglass_worker.policies import Policies


def test_no_allowed_executors_is_no_limit() -> None:
    open_ = NamespacePolicy("billing")
    assert open_.allows("http") and open_.refusal("http") is None


def test_a_policy_allows_only_its_executors_and_says_why_not() -> None:
    policy = NamespacePolicy("billing", frozenset({"http", "echo"}))
    assert policy.allows("echo") and policy.refusal("http") is None
    assert policy.refusal("sleep") == (
        "the policy of namespace 'billing' does not allow executor 'sleep' (allowed: echo, http)"
    )


def test_validate_policy_takes_each_name_once_and_none_as_a_clear() -> None:
    assert validate_policy("billing", ["http", "echo", "http"]) == NamespacePolicy("billing", frozenset({"echo", "http"}))
    assert validate_policy("billing", []) == NamespacePolicy("billing")
    assert validate_policy("b.i_l-l", ["my_exec.v2", "report-2"]).allowed_executors == {"my_exec.v2", "report-2"}


@pytest.mark.parametrize(("names", "field"), [
    (["echo", ""], "allowed_executors[1]"),
    (["*"], "allowed_executors[0]"),
    (["http,echo"], "allowed_executors[0]"),
    (["pkg.module:function"], "allowed_executors[0]"),
    (["with space"], "allowed_executors[0]"),
    (["x" * 129], "allowed_executors[0]"),
    ([f"e{i}" for i in range(MAX_POLICY_EXECUTORS + 1)], "allowed_executors"),
])  # fmt: skip
def test_names_outside_the_executor_name_format_are_invalid_naming_the_field(names: list[str], field: str) -> None:
    with pytest.raises(InvalidArgument) as refused:
        validate_policy("billing", names)
    assert refused.value.field == field


@pytest.mark.parametrize("namespace", ["", "*", "a/b", "x" * 65])
def test_a_bad_namespace_is_invalid_naming_it(namespace: str) -> None:
    with pytest.raises(InvalidArgument) as refused:
        validate_policy(namespace, ["echo"])
    assert refused.value.field == "namespace"


# -- the worker's copy -------------------------------------------------------------------------


async def test_the_workers_copy_refuses_what_the_last_read_forbids_and_keeps_it_while_the_store_is_away() -> None:
    stored: dict[str, NamespacePolicy] | None = {"billing": NamespacePolicy("billing", frozenset({"echo"}))}
    reads: list[int] = []

    async def read() -> dict[str, NamespacePolicy]:
        reads.append(len(reads))
        if stored is None:
            raise Unavailable("cassandra away")
        return dict(stored)

    policies = Policies(read, every_s=0.05)
    assert not policies.loaded.is_set() and policies.refusal("billing", "http") is None
    refresher = asyncio.create_task(policies.run())
    try:
        await asyncio.wait_for(policies.loaded.wait(), 1)
        assert policies.refusal("billing", "echo") is None and policies.refusal("ops", "http") is None
        assert policies.refusal("billing", "http") == (
            "the policy of namespace 'billing' does not allow executor 'http' (allowed: echo)"
        )
        stored = None  # the store goes away: the policies read last stay in force
        await asyncio.sleep(0.2)
        assert policies.refusal("billing", "http") is not None
        stored = {"ops": NamespacePolicy("ops", frozenset({"http"}))}  # back, with billing cleared
        await asyncio.sleep(0.2)
        assert policies.refusal("billing", "http") is None and policies.refusal("ops", "echo") is not None
        assert len(reads) >= 4
    finally:
        refresher.cancel()
        await asyncio.gather(refresher, return_exceptions=True)
