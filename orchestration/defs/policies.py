"""What every asset of the project shares in the Dagster UI: who owns it, how fresh it must be,
how often a step is retried.

The marts and the report are built by the daily schedule (06:00 Europe/Berlin); a day and two
hours without a new materialisation fails their freshness (a run's own time and a late start
fit in the two hours), after 25 hours they warn.
"""
from datetime import timedelta

from dagster import Backoff, FreshnessPolicy, RetryPolicy

OWNERS = ["team:data-engineering"]
DAILY_FRESHNESS = FreshnessPolicy.time_window(fail_window=timedelta(hours=26), warn_window=timedelta(hours=25))
# Ingestion reads files that an export job may still be writing or a network share may drop for a
# moment: two more attempts, 30 s and 60 s later. A file that fails to parse fails the same way
# again (and fails whole, named): the retries cost a few seconds there.
INGESTION_RETRY = RetryPolicy(max_retries=2, delay=30, backoff=Backoff.EXPONENTIAL)


def layer_tags(layer: str) -> dict[str, str]:
    """Tags for an asset of a layer of the data's path (raw, staging, intermediate, marts, serving)."""
    return {"layer": layer}
