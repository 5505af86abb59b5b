"""One asset per landing source (``raw/<source>``): load new landing files into DuckDB.

Each asset carries a blocking check ``max_rejected_share``: when this load rejected a
larger share of rows than the ``max_rejected_share`` var allows, nothing downstream runs
and the serving snapshot is not republished.
"""

from dagster import (
    AssetCheckResult,
    AssetCheckSeverity,
    AssetCheckSpec,
    AssetExecutionContext,
    AssetKey,
    AssetsDefinition,
    Failure,
    MaterializeResult,
    MetadataValue,
    asset,
)

from orchestration.defs.policies import INGESTION_RETRY, OWNERS, layer_tags
from orchestration.resources import ClmSettings
from pipelines.raw.load import SourceLoadResult, load_source
from pipelines.contract import SOURCES

GROUP = "ingestion"
CHECK_NAME = "max_rejected_share"


def raw_key(source: str) -> AssetKey:
    return AssetKey(["raw", source])


def load_metadata(result: SourceLoadResult) -> dict:
    """Materialisation metadata: counts and file names only, never row content."""
    files = [
        {
            "file": f.file,
            "status": f.status,
            "rows_loaded": f.rows_loaded,
            "rows_rejected": f.rows_rejected,
            "seconds": round(f.seconds, 3),
            **({"error": f.error} if f.error else {}),
        }
        for f in result.files
    ]
    return {
        "files": MetadataValue.json(files),
        "files_loaded": sum(f.status == "loaded" for f in result.files),
        "files_duplicate": sum(f.status == "duplicate" for f in result.files),
        "files_failed": len(result.failed_files),
        "files_skipped": len(result.skipped_files),
        "rows_loaded": result.rows_loaded,
        "rows_rejected": result.rows_rejected,
        "rejected_share": MetadataValue.float(round(result.rejected_share, 6)),
        "seconds": MetadataValue.float(round(result.seconds, 3)),
        "extra_columns": MetadataValue.json(
            {f.file: list(f.extra_columns) for f in result.files if f.extra_columns}
        ),
        "rows_erased": sum(f.rows_erased for f in result.files),
        "dialects": MetadataValue.json({f.file: f.dialect for f in result.files if f.dialect}),
    }


def rejected_share_check(result: SourceLoadResult, max_share: float) -> AssetCheckResult:
    share = result.rejected_share
    return AssetCheckResult(
        check_name=CHECK_NAME,
        passed=share <= max_share,
        severity=AssetCheckSeverity.ERROR,
        metadata={
            "rejected_share": MetadataValue.float(round(share, 6)),
            "max_rejected_share": MetadataValue.float(float(max_share)),
            "rows_loaded": result.rows_loaded,
            "rows_rejected": result.rows_rejected,
            "files_loaded": sum(f.status == "loaded" for f in result.files),
        },
        description=(
            f"{result.source}: {result.rows_rejected:,} of "
            f"{result.rows_loaded + result.rows_rejected:,} rows rejected "
            f"({share:.2%}; allowed {float(max_share):.2%})"
        ),
    )


def failure_message(result: SourceLoadResult) -> str:
    failed = result.failed_files
    parts = [f.error or f"{f.file}: failed" for f in failed]
    head = f"{result.source}: {len(failed)} file{'s' if len(failed) != 1 else ''} failed to load: "
    return head + "; ".join(parts)


def build_ingestion_asset(source: str) -> AssetsDefinition:
    spec = SOURCES[source]

    @asset(
        key=raw_key(source),
        group_name=GROUP,
        description=f"{spec.description}: new files of `{source}/` loaded into raw.{source}.",
        kinds={"duckdb", "python"},
        owners=OWNERS,
        tags=layer_tags("raw"),
        retry_policy=INGESTION_RETRY,
        check_specs=[
            AssetCheckSpec(
                CHECK_NAME,
                asset=raw_key(source),
                blocking=True,
                description=(
                    "Share of rows rejected in this load must not exceed the "
                    "max_rejected_share var (default 0.05)."
                ),
            )
        ],
    )
    def _load(context: AssetExecutionContext, clm: ClmSettings):
        settings = clm.get()
        result = load_source(settings, source)
        check = rejected_share_check(result, settings.vars["max_rejected_share"])
        yield MaterializeResult(metadata=load_metadata(result), check_results=[check])
        if result.failed_files:
            raise Failure(
                description=failure_message(result),
                metadata={"failed_files": MetadataValue.json([f.file for f in result.failed_files])},
            )

    return _load


ingestion_assets = [build_ingestion_asset(source) for source in SOURCES]
