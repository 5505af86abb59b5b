"""How many records a landing file holds, counted from its bytes without DuckDB (CONTRACT section 2:
loaded plus rejected equals the records in the file, checked by an independent count).

Text files are counted while they are hashed (``pipelines.raw.files.inspect_file``), chunk by
chunk, with NumPy over the bytes:

* NDJSON: every line is a row of DuckDB's line reader, empty ones too (the loader skips
  blank lines without counting them as rejected).
* CSV: a line feed ends a record unless it is inside a quoted field. A quote opens a field only
  at the start of a field and closes it before a delimiter, a line end or a doubled quote, as
  RFC 4180 and DuckDB's reader have it. While every quote of a file sits in such a place, the
  quotes before a line feed tell whether it is inside a field (their count is odd), so the
  count is a few vectorised passes per chunk. A file with a quote elsewhere (``5" screen``) is
  counted again by Python's C ``csv`` module, which reads such quotes as DuckDB does.

Besides the number of records, the count knows what DuckDB's line numbers need: DuckDB numbers
the *rows* it meets, including empty ones it skips, and counts a record spread over several
lines (a quoted line break) as one. ``Count.blank_rows`` and ``Count.multi_line_rows`` let the
loader turn both into the line a record starts on in the file.

It also refuses what DuckDB cannot account for, naming the line: a quote left open at the end
of the file (DuckDB would swallow the rest of the file into one rejected record), a carriage
return without a line feed (DuckDB's reader stops), and in NDJSON a 0x1F byte (the unit
separator the loader reads lines with).
"""
from __future__ import annotations

import csv
import io
import sys
from dataclasses import dataclass, field

import numpy as np

LF, CR, QUOTE, UNIT_SEPARATOR = 10, 13, 34, 31
_EMPTY = np.empty(0, dtype=np.int64)


class UnaccountableFile(ValueError):
    """The file's records cannot be accounted for; the message names the line."""


@dataclass
class Count:
    """A file's records as DuckDB's reader will meet them.

    ``rows``: every row DuckDB's reader numbers, empty ones included (CSV: the header is row 0).
    ``blank_rows``: indices of the empty rows among them (CSV: skipped by the reader).
    ``multi_line_rows``/``extra_lines``: rows spread over several lines, and how many lines
    each spans beyond its first.
    """

    rows: int
    lines: int
    blank_rows: np.ndarray = field(default_factory=lambda: _EMPTY)
    multi_line_rows: np.ndarray = field(default_factory=lambda: _EMPTY)
    extra_lines: np.ndarray = field(default_factory=lambda: _EMPTY)

    @property
    def records(self) -> int:
        """Rows that are records (not empty), the header row of a CSV included."""
        return self.rows - len(self.blank_rows)

    def start_line(self, row: int) -> int:
        """The line of the file row ``row`` (0-based, as DuckDB numbers rows) starts on."""
        before = np.searchsorted(self.multi_line_rows, row, side="left")
        return int(row + 1 + self.extra_lines[:before].sum())


class RecordCounter:
    """Feed the (decompressed) bytes of a CSV or NDJSON file in order; ``finish()`` gives the
    :class:`Count` or raises :class:`UnaccountableFile`. ``needs_csv_module`` after
    ``finish()``: the file has quotes in other places than RFC 4180 ones; count it with
    :func:`count_csv_text` instead."""

    def __init__(self, fmt: str, delimiter: str | None = None, bom: bool = False):
        if fmt not in ("csv", "ndjson"):
            raise ValueError(f"no record counter for {fmt}")
        self.csv = fmt == "csv"
        self.delimiter = ord(delimiter or ",")
        self.offset = 0  # bytes fed so far
        self.newlines = 0  # line feeds seen
        self.quotes = 0  # quotes seen (their parity: inside a quoted field or not)
        self.last_end = -1  # offset of the line feed that ended the last row
        self.last_end_line = 0  # the line that line feed ended
        self.rows = 0
        self.prev_byte = -1
        self.prev_two = b""  # the last two bytes fed
        self.crlf: bool | None = None  # rows end in CRLF (True) or LF (False): DuckDB takes one kind only
        self.first_field_at = 3 if bom else 0  # a BOM is not part of the first field
        self.close_pending = False  # the previous chunk ended in a quote that closed a field
        self.cr_pending_line = 0  # the previous chunk ended in a carriage return on this line
        self.needs_csv_module = False
        self._blank: list[np.ndarray] = []
        self._multi: list[np.ndarray] = []
        self._extra: list[np.ndarray] = []

    # -- feeding -----------------------------------------------------------------------
    def feed(self, data: bytes) -> None:
        if not data:
            return
        a = np.frombuffer(data, dtype=np.uint8)
        n = len(a)
        if self.close_pending:
            self.close_pending = False
            if a[0] not in (self.delimiter, LF, CR, QUOTE):
                self.needs_csv_module = True
        fast = not (self.csv and self.needs_csv_module)
        if self.cr_pending_line:
            if fast and a[0] != LF and not (self.quotes & 1):
                raise UnaccountableFile(_lone_cr(self.cr_pending_line))
            self.cr_pending_line = 0
        quotes_before, q = self.quotes, None
        if self.csv and fast and b'"' in data:
            q = np.flatnonzero(a == QUOTE)
            self._check_quote_places(a, q)
            fast = not self.needs_csv_module
            self.quotes += len(q)

        def inside(positions: np.ndarray) -> np.ndarray | None:
            """Per position: inside a quoted field (None: nowhere in this chunk)."""
            if q is not None:
                return ((quotes_before + np.searchsorted(q, positions)) & 1).astype(bool)
            return np.ones(len(positions), dtype=bool) if quotes_before & 1 else None

        if fast and b"\r" in data:
            cr = np.flatnonzero(a == CR)
            lone = (cr < n - 1) & (a[np.minimum(cr + 1, n - 1)] != LF)
            in_field = inside(cr)
            if in_field is not None:
                lone &= ~in_field
            if lone.any():
                at = int(cr[np.argmax(lone)])
                raise UnaccountableFile(_lone_cr(self.newlines + data.count(b"\n", 0, at) + 1))
            if cr[-1] == n - 1 and (in_field is None or not in_field[-1]):
                self.cr_pending_line = self.newlines + data.count(b"\n") + 1
        if not self.csv and b"\x1f" in data:
            line = self.newlines + data.count(b"\n", 0, data.index(b"\x1f")) + 1
            raise UnaccountableFile(f"line {line} holds a control character (0x1F), which JSON text cannot hold")
        lf = a == LF
        if fast and q is None and not (quotes_before & 1) and not (self.csv and self._blank_row_in(a, lf, data)):
            # the common case: every line feed ends a row that is not empty
            line_feeds = int(np.count_nonzero(lf))
            if line_feeds:
                self._check_line_end_style(a, data, line_feeds)
                self.rows += line_feeds
                self.last_end = self.offset + data.rfind(b"\n")
                self.last_end_line = self.newlines + line_feeds
        else:
            nl = np.flatnonzero(lf)
            line_feeds = len(nl)
            if fast:
                self._rows_ended_by(a, nl, inside(nl))
        self.newlines += line_feeds
        self.offset += n
        self.prev_byte = int(a[-1])
        self.prev_two = data[-2:]

    def _check_line_end_style(self, a: np.ndarray, data: bytes, line_feeds: int) -> None:
        """Every line feed of the chunk ends a row: all must be CRLF or all LF, as the first."""
        first_lf = data.index(b"\n")
        before_first = a[first_lf - 1] if first_lf else self.prev_byte
        if self.crlf is None:
            self.crlf = before_first == CR
        if not self.crlf:
            if b"\r" in data:  # every carriage return here precedes a line feed
                self._mixed(self.newlines + data.count(b"\n", 0, data.index(b"\r")) + 1)
            return
        crlf_pairs = int(np.count_nonzero(a == CR)) - (a[-1] == CR) + (a[0] == LF and self.prev_byte == CR)
        if crlf_pairs != line_feeds:
            lf = np.flatnonzero(a == LF)
            before = a[np.maximum(lf - 1, 0)].astype(np.int64)
            before[lf == 0] = self.prev_byte
            self._mixed(self.newlines + int(np.argmax(before != CR)) + 1)

    def _mixed(self, line: int) -> None:
        first, other = ("CRLF", "LF") if self.crlf else ("LF", "CRLF")
        raise UnaccountableFile(f"line {line} ends in {other} where the lines before end in {first} (mixed "
                                "line ends); save the file with one kind of line end")

    def _blank_row_in(self, a: np.ndarray, lf: np.ndarray, data: bytes) -> bool:
        """Whether this chunk may end an empty row: two line ends in a row."""
        seam = self.prev_two + data[:2]
        if b"\n\n" in seam or b"\n\r\n" in seam or (self.offset == 0 and data[:1] in (b"\n", b"\r")):
            return True
        if np.any(lf[1:] & lf[:-1]):
            return True
        return b"\r" in data and bool(np.any(lf[2:] & (a[1:-1] == CR) & lf[:-2]))

    def _check_quote_places(self, a: np.ndarray, q: np.ndarray) -> None:
        """Quotes that open a field must follow a delimiter, a line end or the file's start;
        quotes that close one must precede a delimiter, a line end or a doubled quote."""
        opening = ((self.quotes + np.arange(len(q))) & 1) == 0
        before = a[np.maximum(q - 1, 0)].astype(np.int64)
        before[q == 0] = self.prev_byte
        at_start = (q + self.offset) == self.first_field_at
        ok_open = at_start | (before == self.delimiter) | (before == LF) | (before == CR) | (before == QUOTE)
        after = a[np.minimum(q + 1, len(a) - 1)].astype(np.int64)
        last = q == len(a) - 1
        ok_close = last | (after == self.delimiter) | (after == LF) | (after == CR) | (after == QUOTE)
        if np.any(opening & ~ok_open) or np.any(~opening & ~ok_close):
            self.needs_csv_module = True
        elif last[-1] and not opening[-1]:
            self.close_pending = True

    def _rows_ended_by(self, a: np.ndarray, nl: np.ndarray, inside: np.ndarray | None) -> None:
        lines = self.newlines + 1 + np.arange(len(nl), dtype=np.int64)  # the line each line feed ends
        ends = nl if inside is None else nl[~inside]
        end_lines = lines if inside is None else lines[~inside]
        if not len(ends):
            return
        pos = ends.astype(np.int64) + self.offset
        prev_pos = np.empty_like(pos)
        prev_pos[0], prev_pos[1:] = self.last_end, pos[:-1]
        length = pos - prev_pos - 1
        before = a[np.maximum(ends - 1, 0)].astype(np.int64)
        before[ends == 0] = self.prev_byte
        crlf = before == CR
        if self.crlf is None:
            self.crlf = bool(crlf[0])
        if np.any(crlf != self.crlf):
            self._mixed(int(end_lines[np.argmax(crlf != self.crlf)]))
        blank = (length == 0) | ((length == 1) & crlf)
        if not self.csv:  # DuckDB's one-column line reader yields empty lines (the loader skips them)
            blank[:] = False
        prev_line = np.empty_like(end_lines)
        prev_line[0], prev_line[1:] = self.last_end_line, end_lines[:-1]
        extra = end_lines - prev_line - 1
        rows = self.rows + np.arange(len(ends), dtype=np.int64)
        if blank.any():
            self._blank.append(rows[blank])
        if extra.any():
            self._multi.append(rows[extra > 0])
            self._extra.append(extra[extra > 0])
        self.rows += len(ends)
        self.last_end, self.last_end_line = int(pos[-1]), int(end_lines[-1])

    # -- the end -----------------------------------------------------------------------
    def finish(self) -> Count | None:
        """The count, or None when the file needs :func:`count_csv_text`."""
        if self.needs_csv_module:
            return None
        lines = self.newlines
        tail = self.offset - self.last_end - 1  # bytes after the last row's line feed
        if self.quotes & 1:
            raise UnaccountableFile(
                f"line {self.last_end_line + 1} opens a quoted field that is never closed: reading "
                "would stop there and swallow the rest of the file")
        if tail > 0:
            lines += 1
            blank = self.csv and tail == 1 and self.prev_byte == CR
            extra = self.newlines - self.last_end_line
            if blank:
                self._blank.append(np.array([self.rows], dtype=np.int64))
            if extra:
                self._multi.append(np.array([self.rows], dtype=np.int64))
                self._extra.append(np.array([extra], dtype=np.int64))
            self.rows += 1
        return Count(
            rows=self.rows,
            lines=lines,
            blank_rows=_concat(self._blank),
            multi_line_rows=_concat(self._multi),
            extra_lines=_concat(self._extra),
        )


def _lone_cr(line: int) -> str:
    return (f"line {line} ends in a carriage return without a line feed (mixed or old Mac line ends); "
            "save the file with LF or CRLF line ends")


def _concat(parts: list[np.ndarray]) -> np.ndarray:
    return np.concatenate(parts) if parts else _EMPTY


def count_csv_text(text_stream, delimiter: str) -> Count:
    """Count a CSV file's rows with Python's C ``csv`` module (used for files whose quotes are
    not all in RFC 4180 places; it reads a stray quote as a character, as DuckDB does).
    ``text_stream``: the file decoded, split into lines at line feeds only (``newline='\\n'``): a carriage
    return inside a quoted field is no line end."""
    csv.field_size_limit(sys.maxsize)
    reader = csv.reader(text_stream, delimiter=delimiter, quotechar='"', doublequote=True, strict=False)
    blank, multi, extra = [], [], []
    rows, last_line = 0, 0
    for row in reader:
        line = reader.line_num
        if not row:
            blank.append(rows)
        if line - last_line > 1 and row:
            multi.append(rows)
            extra.append(line - last_line - 1)
        last_line = line
        rows += 1
    return Count(rows=rows, lines=last_line, blank_rows=np.array(blank, dtype=np.int64),
                 multi_line_rows=np.array(multi, dtype=np.int64), extra_lines=np.array(extra, dtype=np.int64))


def count_csv_bytes(data: bytes, delimiter: str = ",") -> Count:
    """Count a whole CSV held in memory (tests and small files): the fast count, falling back
    to the csv module where quotes sit in other places."""
    counter = RecordCounter("csv", delimiter, bom=data.startswith(b"\xef\xbb\xbf"))
    counter.feed(data)
    found = counter.finish()
    if found is None:
        found = count_csv_text(io.StringIO(data.decode("utf-8", errors="replace"), newline="\n"), delimiter)
    return found
