"""Fixtures shared by test modules."""
from __future__ import annotations

import pytest


@pytest.fixture(scope="session")
def demo_warehouse(tmp_path_factory):
    """A demo landing set (120 customers, seed 7) run through the whole pipeline once, as of
    2025-12-31, with its Dagster instance in ``dagster_home``; for tests that only read its
    warehouse, snapshot, report and run."""
    from tests.pipeline import run_clm
    from tools.demo.generate import generate

    root = tmp_path_factory.mktemp("demo")
    generate(root / "landing", customers=120, seed=7)
    # a Dagster instance of its own, so that tests can read the run's events and tags
    (root / "dagster_home").mkdir()
    mp = pytest.MonkeyPatch()
    mp.setenv("DAGSTER_HOME", str(root / "dagster_home"))
    try:
        assert run_clm(root, '{"as_of_date": "2025-12-31"}') == 0
    finally:
        mp.undo()
    return root
