"""Finding landing files and sniffing what they are: format, compression,
encoding, CSV delimiter, header. One streamed pass over the bytes computes the
content hash and checks UTF-8 validity; nothing here looks at rows one by one.
"""
from __future__ import annotations

import codecs
import csv
import gzip
import hashlib
import io
import zlib
from dataclasses import dataclass
from pathlib import Path

CHUNK = 8 * 1024 * 1024
GZIP_MAGIC = b"\x1f\x8b"
PARQUET_MAGIC = b"PAR1"
CSV_DELIMITERS = (",", ";", "\t", "|")
# Partial downloads and editor droppings are never loaded.
IGNORED_SUFFIXES = (".tmp", ".part", ".crdownload", ".partial")


@dataclass(frozen=True)
class FileInfo:
    path: Path
    relative_name: str  # "<source>/<name>" relative to the landing dir
    size: int
    content_hash: str  # sha256 of the bytes as delivered
    compressed: bool
    format: str  # csv | ndjson | json | parquet
    encoding: str  # utf-8 | cp1252 | latin-1 (text formats); "" for parquet
    has_bom: bool


class FileFormatError(ValueError):
    """A file cannot be read at all; the message names the file."""


def list_landing_files(landing_dir: Path, source: str) -> list[Path]:
    folder = landing_dir / source
    if not folder.is_dir():
        return []
    files = []
    for path in sorted(folder.rglob("*")):
        name = path.name
        if not path.is_file() or name.startswith((".", "~$", "_")):
            continue
        if name.lower().endswith(IGNORED_SUFFIXES):
            continue
        files.append(path)
    return files


def _open_bytes(path: Path, compressed: bool):
    return gzip.open(path, "rb") if compressed else open(path, "rb")


def hash_file(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        while chunk := fh.read(CHUNK):
            h.update(chunk)
    return h.hexdigest()


def _sniff_format(head: bytes, name: str) -> str:
    if head.startswith(PARQUET_MAGIC):
        return "parquet"
    text = head.lstrip(b"\xef\xbb\xbf \t\r\n")
    if text.startswith(b"["):
        return "json"
    if text.startswith(b"{"):
        return "ndjson"
    lowered = name.lower()
    for ext, fmt in ((".parquet", "parquet"), (".ndjson", "ndjson"), (".jsonl", "ndjson"), (".json", "json")):
        if lowered.endswith(ext) or lowered.endswith(ext + ".gz"):
            return fmt
    return "csv"


def inspect_file(path: Path, landing_dir: Path) -> FileInfo:
    """Hash the file and find its format and encoding in one streamed pass."""
    with open(path, "rb") as fh:
        magic = fh.read(2)
    compressed = magic == GZIP_MAGIC
    h = hashlib.sha256()
    decoder = codecs.getincrementaldecoder("utf-8")()
    utf8 = True
    head = b""
    inflater = zlib.decompressobj(16 + zlib.MAX_WBITS) if compressed else None
    with open(path, "rb") as fh:
        while chunk := fh.read(CHUNK):
            h.update(chunk)
            data = chunk
            if inflater is not None:
                try:
                    data = inflater.decompress(chunk)
                except zlib.error as exc:
                    raise FileFormatError(f"{path.name}: corrupt gzip data ({exc})") from exc
            if len(head) < 65536:
                head += data[: 65536 - len(head)]
            if utf8 and not head.startswith(PARQUET_MAGIC):
                try:
                    decoder.decode(data)
                except UnicodeDecodeError:
                    utf8 = False
    if utf8 and not head.startswith(PARQUET_MAGIC):
        try:
            decoder.decode(b"", final=True)
        except UnicodeDecodeError:
            utf8 = False
    fmt = _sniff_format(head, path.name)
    encoding = ""
    if fmt != "parquet":
        encoding = "utf-8" if utf8 else _legacy_encoding(path, compressed)
    try:
        relative = path.relative_to(landing_dir).as_posix()
    except ValueError:
        relative = path.name
    return FileInfo(
        path=path,
        relative_name=relative,
        size=path.stat().st_size,
        content_hash=h.hexdigest(),
        compressed=compressed,
        format=fmt,
        encoding=encoding,
        has_bom=head.startswith(codecs.BOM_UTF8),
    )


def _legacy_encoding(path: Path, compressed: bool) -> str:
    """Windows-1252 (what Excel writes) unless the file has bytes it leaves undefined."""
    decoder = codecs.getincrementaldecoder("cp1252")()
    with _open_bytes(path, compressed) as fh:
        try:
            while chunk := fh.read(CHUNK):
                decoder.decode(chunk)
            decoder.decode(b"", final=True)
        except UnicodeDecodeError:
            return "latin-1"
    return "cp1252"


def transcode_to_utf8(info: FileInfo, target: Path) -> Path:
    """Write a UTF-8 copy of a legacy-encoded text file (streamed, chunked)."""
    decoder = codecs.getincrementaldecoder(info.encoding)()
    with _open_bytes(info.path, info.compressed) as src, open(target, "wb") as dst:
        while chunk := src.read(CHUNK):
            dst.write(decoder.decode(chunk).encode("utf-8"))
        dst.write(decoder.decode(b"", final=True).encode("utf-8"))
    return target


def read_first_line(path: Path, compressed: bool, encoding: str = "utf-8") -> str:
    with _open_bytes(path, compressed) as fh:
        raw = fh.read(1024 * 1024)
    text = raw.decode(encoding, errors="replace").lstrip("\ufeff")
    return text.splitlines()[0] if text else ""


def sniff_delimiter(header_line: str) -> str:
    """The candidate delimiter that splits the header into the most fields."""
    best, best_fields = ",", 1
    for delim in CSV_DELIMITERS:
        fields = next(csv.reader(io.StringIO(header_line), delimiter=delim), [])
        if len(fields) > best_fields:
            best, best_fields = delim, len(fields)
    return best


def split_header(header_line: str, delimiter: str) -> list[str]:
    return next(csv.reader(io.StringIO(header_line), delimiter=delimiter), [])
