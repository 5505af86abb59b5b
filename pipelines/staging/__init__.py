"""Content standardisation helpers used between ``raw`` and ``staging``.

The rules that can be written as data live in dbt seeds (``dbt_project/seeds``:
country aliases, currencies, channel groups); this package holds what needs Python.
"""
from pipelines.staging.phones import normalise_phone, normalise_phones

__all__ = ["normalise_phone", "normalise_phones"]
