"""docs/CONTRACT.md is the product contract as users of this repository read it. When the
upstream contract (../shared/SPEC.md, beside a checkout of this repository in CI) is present,
every mart, var and command it names must be named in docs/CONTRACT.md too."""
from __future__ import annotations

import re

import pytest

from pipelines.config import PROJECT_ROOT, default_vars

SPEC = PROJECT_ROOT.parent / "shared" / "SPEC.md"
CONTRACT = (PROJECT_ROOT / "docs" / "CONTRACT.md").read_text(encoding="utf-8")


def sections(text: str) -> dict[str, str]:
    parts = re.split(r"^## (\d+)\. ", text, flags=re.M)
    return {number: body for number, body in zip(parts[1::2], parts[2::2])}


def names_in_spec(text: str) -> dict[str, set[str]]:
    by_section = sections(text)
    marts = set(re.findall(r"`marts\.([a-z_]+)`", text))
    marts |= set(re.findall(r"^\| `([a-z_]+)` \|", by_section["3"], flags=re.M))
    variables = set(re.findall(r"^\| `([a-z_]+)` \|", by_section["5"], flags=re.M))
    variables |= set(re.findall(r"`([a-z_]+)` \(\d", by_section["7"]))
    variables |= set(re.findall(r"`([a-z_]+_days)` \(\d+\)", by_section["8"]))
    commands = set(re.findall(r"`((?:clm|make) [a-z-]+)", by_section["1"]))
    return {"mart": marts, "var": variables, "command": commands}


@pytest.mark.skipif(not SPEC.exists(), reason="../shared/SPEC.md is not beside this checkout")
@pytest.mark.parametrize("kind", ["mart", "var", "command"])
def test_the_contract_names_everything_the_spec_names(kind):
    names = names_in_spec(SPEC.read_text(encoding="utf-8"))[kind]
    assert names, f"no {kind} found in SPEC.md: the extraction needs updating"
    missing = sorted(n for n in names if f"`{n}" not in CONTRACT and f" {n}`" not in CONTRACT and n not in CONTRACT)
    assert missing == []


def test_every_var_of_the_project_is_in_the_contract():
    missing = sorted(name for name in default_vars() if f"`{name}`" not in CONTRACT)
    assert missing == []


def test_the_spec_extraction_by_hand():
    text = ("## 1. Running\n| a | `clm run` |\n| b | `make dev` (UI) |\n## 3. Outputs\n| `dim_customers` | x |\n"
            "## 5. Rules\n| `as_of_date` | today |\n## 7. Early\nNew vars: `horizon_days` (90), `share` (0.1).\n"
            "`marts.churn_risk`: one row\n## 8. Journeys\nthe `lookback_days` (30) before\n")
    assert names_in_spec(text) == {"mart": {"dim_customers", "churn_risk"},
                                   "var": {"as_of_date", "horizon_days", "share", "lookback_days"},
                                   "command": {"clm run", "make dev"}}
