"""Loading landing exports into schema ``raw`` (SPEC section 2)."""
from pipelines.raw.load import FileLoad, FileLoadError, SourceLoadResult, load_source

__all__ = ["FileLoad", "FileLoadError", "SourceLoadResult", "load_source"]
