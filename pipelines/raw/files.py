"""Finding landing files and sniffing what they are: format, compression, encoding, CSV
delimiter, and how many records they hold.

Only regular files inside the landing folder are read. A symlink is followed only when it
leads to a regular file inside the landing folder; one leading elsewhere (``/etc/passwd``),
a symlinked folder, a FIFO or a device is skipped and reported, never opened for reading.
A file is opened once by its exact name and read through that open file: the reader is
handed ``/proc/self/fd/N`` (:func:`reader_path`), never the name, since DuckDB's readers
expand ``*``, ``?`` and ``[...]`` in a name as a pattern.

One streamed pass over the bytes computes the content hash, checks UTF-8 validity,
decompresses gzip (a truncated stream fails the file, naming the line it ends in) and counts
the records (``pipelines.raw.records``); nothing here looks at rows one by one.
"""
from __future__ import annotations

import codecs
import contextlib
import csv
import gzip
import hashlib
import io
import os
import stat
import zlib
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

from pipelines.raw.records import Count, RecordCounter, UnaccountableFile, count_csv_text

CHUNK = 8 * 1024 * 1024
HEAD = 65536
GZIP_MAGIC = b"\x1f\x8b"
PARQUET_MAGIC = b"PAR1"
UTF16_BOMS = (b"\xff\xfe", b"\xfe\xff")
CSV_DELIMITERS = (",", ";", "\t", "|")
# Partial downloads and editor droppings are never loaded (nor reported: they come and go).
IGNORED_SUFFIXES = (".tmp", ".part", ".crdownload", ".partial")
IGNORED_PREFIXES = (".", "~$", "_")


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
    reader: str = ""  # the name readers open the file by (reader_path), valid while the file is open
    delimiter: str | None = None  # CSV: the delimiter sniffed from the header line
    # CSV and NDJSON: the records counted from the bytes (None: CSV to be counted with the
    # csv module, see pipelines.raw.records; JSON arrays and Parquet are counted by the loader)
    count: Count | None = field(default=None, compare=False, repr=False)


class FileFormatError(ValueError):
    """A file cannot be read at all; the message names the file."""


@dataclass(frozen=True)
class Skipped:
    relative_name: str
    reason: str


@dataclass
class Listing:
    files: list[Path] = field(default_factory=list)
    skipped: list[Skipped] = field(default_factory=list)


def _ignored(name: str) -> bool:
    return name.startswith(IGNORED_PREFIXES) or name.lower().endswith(IGNORED_SUFFIXES)


def list_landing_files(landing_dir: Path, source: str) -> Listing:
    """The files of ``landing_dir/source`` to load, in name order, and those skipped with the
    reason (see the module docstring). Hidden files, ``_``-prefixed files and partial
    downloads are ignored silently."""
    root = Path(os.path.realpath(landing_dir))
    folder = Path(landing_dir) / source
    listing = Listing()
    if not folder.is_dir():
        return listing
    real_folder = Path(os.path.realpath(folder))
    if not real_folder.is_relative_to(root):
        listing.skipped.append(Skipped(source + "/", "the source folder is a symlink leading outside the landing folder"))
        return listing
    for dirpath, dirnames, filenames in os.walk(folder, followlinks=False):
        base = Path(dirpath)
        for d in list(dirnames):
            if _ignored(d):
                dirnames.remove(d)
            elif (base / d).is_symlink():
                dirnames.remove(d)
                listing.skipped.append(Skipped(_relative(base / d, landing_dir), "a symlinked folder (not followed)"))
        dirnames.sort()
        for name in sorted(filenames):
            if _ignored(name):
                continue
            path = base / name
            reason = refusal(path, root)
            if reason:
                listing.skipped.append(Skipped(_relative(path, landing_dir), reason))
            else:
                listing.files.append(path)
    listing.files.sort()
    return listing


def refusal(path: Path, root: Path) -> str | None:
    """Why ``path`` must not be read (None: a regular file inside ``root``, the real landing folder)."""
    try:
        if path.is_symlink():
            target = Path(os.path.realpath(path))
            if not target.is_relative_to(root):
                return "a symlink leading outside the landing folder"
            mode = os.stat(target).st_mode
        else:
            mode = os.lstat(path).st_mode
    except OSError as exc:
        return f"cannot be examined ({os.strerror(exc.errno) if exc.errno else exc})"
    if not stat.S_ISREG(mode):
        return "not a regular file"
    return None


def _relative(path: Path, landing_dir: Path) -> str:
    try:
        return path.relative_to(landing_dir).as_posix()
    except ValueError:
        return path.name


@contextlib.contextmanager
def open_landing_file(path: Path, landing_dir: Path) -> Iterator[int]:
    """An open file descriptor of the landing file ``path``, checked after opening to be a
    regular file inside the landing folder (so that a file swapped for a symlink or a FIFO
    between listing and reading is refused, not read)."""
    root = Path(os.path.realpath(landing_dir))
    try:
        fd = os.open(path, os.O_RDONLY | getattr(os, "O_NONBLOCK", 0))
    except OSError as exc:
        raise FileFormatError(f"{_relative(path, landing_dir)}: cannot be opened "
                              f"({os.strerror(exc.errno) if exc.errno else exc})") from None
    try:
        if not stat.S_ISREG(os.fstat(fd).st_mode):
            raise FileFormatError(f"{_relative(path, landing_dir)}: not a regular file")
        real = Path(os.path.realpath(reader_path(fd)))
        if not real.is_relative_to(root):
            raise FileFormatError(f"{_relative(path, landing_dir)}: leads outside the landing folder")
        yield fd
    finally:
        os.close(fd)


def reader_path(fd: int) -> str:
    """A name under which a reader opens exactly the file behind ``fd``: no pattern characters,
    whatever the file is called."""
    return f"/proc/self/fd/{fd}" if os.path.isdir("/proc/self/fd") else f"/dev/fd/{fd}"


@contextlib.contextmanager
def exact_reader_path(path: Path) -> Iterator[str]:
    """``reader_path`` of ``path`` opened for the block (for files the loader writes itself)."""
    fd = os.open(path, os.O_RDONLY)
    try:
        yield reader_path(fd)
    finally:
        os.close(fd)


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


def _not_text(head: bytes) -> str | None:
    """Why a file that is not Parquet cannot be a CSV or JSON text file, or None."""
    if head.startswith(UTF16_BOMS):
        return "is UTF-16 text; save the export as UTF-8 (or Windows-1252)"
    if b"\x00" in head:
        line = head.count(b"\n", 0, head.index(b"\x00")) + 1
        return (f"holds binary data (a NUL byte on line {line}): not a CSV or JSON text file "
                "(UTF-16 text must be saved as UTF-8)")
    return None


def _gunzip(raw: Iterator[bytes], name: str) -> Iterator[bytes]:
    """Decompress a gzip stream of one or more members; raise _Truncated when it ends early."""
    inflater, fed = zlib.decompressobj(16 + zlib.MAX_WBITS), False
    for chunk in raw:
        while chunk:
            fed = True
            try:
                out = inflater.decompress(chunk)
            except zlib.error as exc:
                raise FileFormatError(f"{name}: corrupt gzip data ({exc})") from None
            if out:
                yield out
            chunk = b""
            if inflater.eof:  # a member ended: what follows starts the next one
                chunk = inflater.unused_data
                inflater, fed = zlib.decompressobj(16 + zlib.MAX_WBITS), False
    if fed and not inflater.eof:
        raise _Truncated()


class _Truncated(Exception):
    pass


def inspect_file(path: Path, landing_dir: Path, fd: int | None = None) -> FileInfo:
    """Hash the file, find its format, encoding and delimiter, and count its records, in one
    streamed pass (see the module docstring). ``fd``: the file opened by ``open_landing_file``."""
    name = _relative(path, landing_dir)
    with contextlib.ExitStack() as stack:
        if fd is None:
            fd = stack.enter_context(open_landing_file(path, landing_dir))
        reader = reader_path(fd)
        with open(reader, "rb", buffering=0) as fh:
            return _inspect(fh, path, name, reader)


def _inspect(fh, path: Path, name: str, reader: str) -> FileInfo:
    h = hashlib.sha256()
    size = 0

    def raw_chunks() -> Iterator[bytes]:
        nonlocal size
        while chunk := fh.read(CHUNK):
            size += len(chunk)
            h.update(chunk)
            yield chunk

    raw = raw_chunks()
    first = next(raw, b"")
    compressed = first[:2] == GZIP_MAGIC
    chunks = _chain([first], raw)
    if compressed:
        chunks = _gunzip(chunks, name)
    decoder = codecs.getincrementaldecoder("utf-8")()
    utf8 = True
    head = b""
    pending: list[bytes] = []
    counter: RecordCounter | None = None
    fmt = delimiter = None
    lines_seen = 0
    try:
        for data in chunks:
            if fmt is None:
                head += data[: HEAD - len(head)]
                pending.append(data)
                if len(head) < HEAD:
                    continue
                fmt, delimiter, counter = _start(head, path.name, name)
                data = b"".join(pending)
                pending = []
            if fmt == "parquet":
                continue
            if utf8:
                try:
                    decoder.decode(data)
                except UnicodeDecodeError:
                    utf8 = False
            if counter is not None:
                counter.feed(data)
            else:
                lines_seen += data.count(b"\n")
        if fmt is None:  # a file shorter than the head
            fmt, delimiter, counter = _start(head, path.name, name)
            data = b"".join(pending)
            if fmt != "parquet":
                try:
                    decoder.decode(data)
                except UnicodeDecodeError:
                    utf8 = False
                if counter is not None:
                    counter.feed(data)
    except _Truncated:
        line = (counter.newlines if counter is not None else lines_seen) + 1
        raise FileFormatError(f"{name}: truncated gzip data: the file ends inside line {line}") from None
    except UnaccountableFile as exc:
        raise FileFormatError(f"{name}: {exc}") from None
    if utf8 and fmt != "parquet":
        try:
            decoder.decode(b"", final=True)
        except UnicodeDecodeError:
            utf8 = False
    count = None
    if counter is not None:
        try:
            count = counter.finish()
        except UnaccountableFile as exc:
            raise FileFormatError(f"{name}: {exc}") from None
    encoding = ""
    if fmt != "parquet":
        encoding = "utf-8" if utf8 else _legacy_encoding(reader, compressed)
    return FileInfo(
        path=path,
        reader=reader,
        relative_name=name,
        size=size,
        content_hash=h.hexdigest(),
        compressed=compressed,
        format=fmt,
        encoding=encoding,
        has_bom=head.startswith(codecs.BOM_UTF8),
        delimiter=delimiter,
        count=count,
    )


def _chain(first: list[bytes], rest: Iterator[bytes]) -> Iterator[bytes]:
    yield from first
    yield from rest


def _start(head: bytes, file_name: str, name: str) -> tuple[str, str | None, RecordCounter | None]:
    """Format, CSV delimiter and record counter for a file starting with ``head``."""
    fmt = _sniff_format(head, file_name)
    if fmt == "parquet":
        return fmt, None, None
    why = _not_text(head)
    if why:
        raise FileFormatError(f"{name}: {why}")
    if fmt == "json":
        return fmt, None, None
    delimiter = sniff_delimiter(first_line(head)) if fmt == "csv" else None
    return fmt, delimiter, RecordCounter(fmt, delimiter, bom=head.startswith(codecs.BOM_UTF8))


def first_line(head: bytes, encoding: str = "utf-8") -> str:
    text = head.decode(encoding, errors="replace").lstrip("\ufeff")
    return text.splitlines()[0] if text else ""


def _open_bytes(path: Path | str, compressed: bool):
    return gzip.open(path, "rb") if compressed else open(path, "rb")


def open_bytes(info: FileInfo):
    """The file's (decompressed) bytes, read through its open descriptor."""
    return _open_bytes(info.reader or info.path, info.compressed)


def _legacy_encoding(path: Path | str, compressed: bool) -> str:
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
    with open_bytes(info) as src, open(target, "wb") as dst:
        while chunk := src.read(CHUNK):
            dst.write(decoder.decode(chunk).encode("utf-8"))
        dst.write(decoder.decode(b"", final=True).encode("utf-8"))
    return target


def count_with_csv_module(info: FileInfo) -> Count:
    """The count of a CSV whose quotes the fast count cannot place (see pipelines.raw.records)."""
    with open_bytes(info) as raw:
        text = io.TextIOWrapper(raw, encoding=info.encoding or "utf-8", newline="\n")
        return count_csv_text(text, info.delimiter or ",")


def read_first_line(path: Path, compressed: bool, encoding: str = "utf-8") -> str:
    with _open_bytes(path, compressed) as fh:
        raw = fh.read(1024 * 1024)
    return first_line(raw, encoding)


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
