"""Loading landing exports into schema ``raw`` (CONTRACT section 2)."""
from pipelines.raw.load import FileLoad, FileLoadError, SourceLoadResult, load_source

__all__ = ["FileLoad", "FileLoadError", "SourceLoadResult", "load_source"]
