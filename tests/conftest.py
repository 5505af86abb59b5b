"""Fixtures shared by test modules."""
from __future__ import annotations

import pytest


@pytest.fixture(scope="session")
def demo_warehouse(tmp_path_factory):
    """A demo landing set (120 customers, seed 7) run through the whole pipeline once, as of
    2025-12-31; for tests that only read its warehouse, snapshot and report."""
    from tests.pipeline import run_clm
    from tools.demo.generate import generate

    root = tmp_path_factory.mktemp("demo")
    generate(root / "landing", customers=120, seed=7)
    assert run_clm(root, '{"as_of_date": "2025-12-31"}') == 0
    return root
