"""The collector settings a server process runs with (see hourglass_core.gc_tuning)."""

from __future__ import annotations

import gc
from collections.abc import Iterator

import pytest

from hourglass_core import gc_tuning


@pytest.fixture
def restored_gc() -> Iterator[None]:
    thresholds = gc.get_threshold()
    yield
    gc.unfreeze()
    gc.set_threshold(*thresholds)


@pytest.mark.usefixtures("restored_gc")
def test_settling_freezes_what_start_up_made_and_spaces_full_collections() -> None:
    young, middle, _ = gc.get_threshold()
    made_at_start_up = [[i] for i in range(1000)]
    gc_tuning.settle()
    assert gc.get_freeze_count() >= len(made_at_start_up)
    assert gc.get_threshold() == (young, middle, gc_tuning.FULL_EVERY)
