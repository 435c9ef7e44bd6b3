"""Generic CSV reading for every import: sniffing, header matching, row-level validation.

What it does, in order:

1. `sniff_bytes`: refuse what is not a CSV at all with one clear message (empty file, binary
   data, a spreadsheet, a compressed file, a PDF).
2. `decode`: UTF-8 (a byte-order mark is noted and dropped), else Windows-1252, else Latin-1;
   UTF-16 with a byte-order mark is decoded too. The encoding found is reported.
3. `detect_dialect`: the delimiter (`,` `;` tab `|`) and whether numbers use a decimal comma.
4. `read_table`: a header of more than MAX_COLUMNS (1,000) columns is refused before parsing;
   then the records as text columns (pyarrow's CSV reader; an exact Python `csv`
   fallback when blank lines, multi-line cells or ragged rows make row numbers ambiguous).
   Every record keeps its spreadsheet row number: the header is row 1, the first record row 2.
5. `match_header`: maps the file's headers onto a kind's canonical columns ignoring case,
   spaces and punctuation and accepting common synonyms; the mapping is reported.
6. `Validator`: vectorised column parsers (integers, numbers, money, times, dates, booleans,
   text) that collect a `RowError(file, row, column, value, reason)` for each bad cell instead
   of raising, so good rows are kept and bad rows are reported and written to an error file.
   A dollar amount must fit int64 pico-dollars (MAX_PICO, about $9.22 million per cell);
   larger ones, and exponent bombs such as 1e999999, are row errors ("amount too large").
"""

from __future__ import annotations

import codecs
import csv
import io
import re
from dataclasses import dataclass, field
from decimal import ROUND_HALF_EVEN, Decimal, InvalidOperation
from pathlib import Path
from typing import Iterable, Sequence

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.csv as pacsv

from ..errors import InputError

__all__ = [
    "RowError",
    "ColumnSpec",
    "ColumnMapping",
    "CsvTable",
    "Validator",
    "sniff_bytes",
    "decode",
    "detect_dialect",
    "read_table",
    "normalise_header",
    "match_header",
    "write_error_file",
    "MAX_UNIX_SECONDS",
    "MAX_COLUMNS",
    "MAX_PICO",
]

MAX_UNIX_SECONDS = 253_402_300_800  # 10000-01-01: larger numbers are not Unix seconds
# A file with more columns than this is refused before it is parsed (every import kind has at
# most a few dozen columns; a huge header line is a wrong file, and would be slow to match).
MAX_COLUMNS = 1_000
# The largest dollar amount one cell can hold in integer pico-dollars (int64): about $9.22 million.
MAX_PICO = 2**63 - 1
_DELIMITERS = (",", ";", "\t", "|")
_SAMPLE_BYTES = 256 * 1024


# ---------------------------------------------------------------------------------------------
# Row errors
# ---------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class RowError:
    """One problem with one cell: where it is, what it holds and why it was rejected.

    `row` is the spreadsheet row number (header = 1, first record = 2); `index` is the
    record's position in the file (0-based), used to copy the original row to the error file.
    """

    file: str
    row: int
    column: str
    value: str
    reason: str
    index: int = -1

    def message(self) -> str:
        """'usage.csv row 7, column input_tokens: not a number (value 'abc')'."""
        shown = self.value if len(self.value) <= 60 else self.value[:57] + "..."
        where = f"{self.file} row {self.row}" + (f", column {self.column}" if self.column else "")
        return f"{where}: {self.reason}" + (f" (value {shown!r})" if self.value != "" else "")


# ---------------------------------------------------------------------------------------------
# Sniffing and decoding
# ---------------------------------------------------------------------------------------------

_SIGNATURES: tuple[tuple[bytes, str], ...] = (
    (b"PK\x03\x04", "a spreadsheet or ZIP archive (.xlsx/.ods/.zip)"),
    (b"\xd0\xcf\x11\xe0\xa1\xb1\x1a\xe1", "an Excel 97-2003 spreadsheet (.xls)"),
    (b"\x1f\x8b", "a gzip-compressed file"),
    (b"%PDF", "a PDF document"),
    (b"\x89PNG", "a PNG image"),
    (b"\xff\xd8\xff", "a JPEG image"),
    (b"SQLite format 3\x00", "a SQLite database"),
    (b"PAR1", "a Parquet file"),
)


def sniff_bytes(data: bytes, name: str) -> None:
    """Raise InputError with one clear message when `data` is not a text CSV at all."""
    if not data.strip(b" \t\r\n\x00\xef\xbb\xbf\xff\xfe"):
        raise InputError(f"{name} is empty ({len(data)} bytes): nothing to import")
    for magic, what in _SIGNATURES:
        if data.startswith(magic):
            raise InputError(
                f"{name} is {what}, not a CSV file: open it and save or export it as CSV (UTF-8), then import that"
            )
    head = data[:8192]
    if head.startswith((codecs.BOM_UTF16_LE, codecs.BOM_UTF16_BE)):
        return
    if b"\x00" in head or _control_share(head) > 0.05:
        raise InputError(f"{name} contains binary data, not CSV text: export the data as CSV (UTF-8) and import that")
    if head.lstrip().lower().startswith((b"<?xml", b"<html", b"<!doctype")):
        raise InputError(f"{name} is an XML/HTML document, not a CSV file")


def _control_share(head: bytes) -> float:
    control = sum(1 for b in head if b < 32 and b not in (9, 10, 13))
    return control / max(len(head), 1)


def decode(data: bytes) -> tuple[str, str]:
    """Bytes -> (text, encoding label). UTF-8 (BOM noted), UTF-16 with BOM, Windows-1252, Latin-1."""
    if data.startswith(codecs.BOM_UTF8):
        return data[3:].decode("utf-8", errors="strict") if _is_utf8(data[3:]) else data[3:].decode("cp1252", errors="replace"), "UTF-8 with BOM"
    if data.startswith((codecs.BOM_UTF16_LE, codecs.BOM_UTF16_BE)):
        return data.decode("utf-16"), "UTF-16"
    if _is_utf8(data):
        return data.decode("utf-8"), "UTF-8"
    try:
        return data.decode("cp1252"), "Windows-1252 (Latin-1)"
    except UnicodeDecodeError:
        return data.decode("latin-1"), "Latin-1 (ISO-8859-1)"


def _is_utf8(data: bytes) -> bool:
    try:
        data.decode("utf-8")
    except UnicodeDecodeError:
        return False
    return True


@dataclass(frozen=True)
class Dialect:
    """How a file is written: its delimiter and its decimal separator."""

    delimiter: str
    decimal_comma: bool


_DECIMAL_COMMA_CELL = re.compile(r"^-?\d+,\d+$")
_DECIMAL_POINT_CELL = re.compile(r"^-?\d+\.\d+$")


def detect_dialect(text: str) -> Dialect:
    """Guess the delimiter from the first lines (the one that splits every line the same way)
    and whether numbers use a decimal comma (only possible when the delimiter is not a comma)."""
    lines = [line for line in text[:_SAMPLE_BYTES].splitlines()[:200] if line.strip()]
    if not lines:
        return Dialect(",", False)
    best, best_score = ",", -1.0
    for delimiter in _DELIMITERS:
        try:
            rows = list(csv.reader(lines[:50], delimiter=delimiter))
        except csv.Error:
            continue
        width = len(rows[0])
        if width < 2:
            continue
        consistent = sum(1 for r in rows if len(r) == width or not any(c.strip() for c in r)) / len(rows)
        score = consistent * 100 + min(width, 50)
        if score > best_score:
            best, best_score = delimiter, score
    decimal_comma = False
    if best != ",":
        cells = [c.strip() for r in csv.reader(lines[1:200], delimiter=best) for c in r]
        decimal_comma = any(_DECIMAL_COMMA_CELL.match(c) for c in cells) and not any(_DECIMAL_POINT_CELL.match(c) for c in cells)
    return Dialect(best, decimal_comma)


# ---------------------------------------------------------------------------------------------
# The table
# ---------------------------------------------------------------------------------------------


@dataclass
class CsvTable:
    """A CSV file as text columns, with where each record sits in the file.

    `columns` maps each header (as written, made unique) to a pyarrow string array; empty
    cells are "". `row_numbers[i]` is the spreadsheet row of record i. `errors` holds
    structural problems (a record with the wrong number of fields), which are not in `columns`.
    """

    name: str
    header: list[str]
    columns: dict[str, pa.Array]
    row_numbers: np.ndarray
    encoding: str
    delimiter: str
    decimal_comma: bool
    errors: list[RowError] = field(default_factory=list)
    blank_rows: int = 0
    raw_rows: dict[int, list[str]] = field(default_factory=dict)  # row number -> cells (ragged rows)

    @property
    def rows(self) -> int:
        """Number of records kept (structurally valid, not blank)."""
        return len(self.row_numbers)

    def describe(self) -> str:
        """'UTF-8, delimiter ',', decimal point' for the import report."""
        delimiter = {"\t": "tab", ",": "','", ";": "';'", "|": "'|'"}.get(self.delimiter, repr(self.delimiter))
        return f"encoding {self.encoding}, delimiter {delimiter}, decimal {'comma' if self.decimal_comma else 'point'}"

    def original_row(self, error: "RowError") -> list[str]:
        """The cells of the record an error is about, as read (for the error file)."""
        if error.index < 0:
            return self.raw_rows.get(error.row, [])
        return [str(self.columns[h][error.index].as_py()) for h in self.header]


def _unique_headers(header: Sequence[str]) -> list[str]:
    seen: dict[str, int] = {}
    out = []
    for position, raw in enumerate(header):
        name = (raw or "").strip().lstrip("\ufeff") or f"column_{position + 1}"
        if name in seen:
            seen[name] += 1
            name = f"{name}.{seen[name]}"
        else:
            seen[name] = 0
        out.append(name)
    return out


def read_table(source: str | Path | bytes, *, name: str | None = None) -> CsvTable:
    """Read a CSV file (path or bytes) into text columns; see the module docstring.

    Raises InputError for a file that is not a CSV at all or has no header row.
    """
    if isinstance(source, (str, Path)):
        path = Path(source)
        name = name or path.name
        try:
            data = path.read_bytes()
        except OSError as exc:
            raise InputError(f"cannot read {path}: {exc.strerror or exc}") from exc
    else:
        data = bytes(source)
        name = name or "upload.csv"
    sniff_bytes(data, name)
    if not data.startswith((codecs.BOM_UTF16_LE, codecs.BOM_UTF16_BE)):
        # Fast path: hand UTF-8 bytes straight to pyarrow, which validates them.
        bom = data.startswith(codecs.BOM_UTF8)
        offset = 3 if bom else 0
        sample = data[offset : offset + _SAMPLE_BYTES].decode("utf-8", errors="ignore")
        table, reason = _read_fast(data, offset, name, "UTF-8 with BOM" if bom else "UTF-8", detect_dialect(sample))
        if table is not None:
            return table
        if reason == "layout":
            text, encoding = decode(data)
            return _read_exact(text, name, encoding, detect_dialect(text))
    text, encoding = decode(data)
    if not text.strip():
        raise InputError(f"{name} is empty: nothing to import")
    dialect = detect_dialect(text)
    table, _reason = _read_fast(text.encode("utf-8"), 0, name, encoding, dialect)
    return table if table is not None else _read_exact(text, name, encoding, dialect)


def _read_fast(data: bytes, offset: int, name: str, encoding: str, dialect: Dialect) -> tuple[CsvTable | None, str]:
    """pyarrow's multi-threaded reader on UTF-8 bytes from `offset`.

    Returns (table, "") or (None, reason): "encoding" when the bytes are not UTF-8, "layout"
    when row numbers would be ambiguous (blank lines, multi-line cells, ragged rows).
    """
    end = len(data)
    while end > offset and data[end - 1] in (10, 13):
        end -= 1
    newline = b"\n" if data.find(b"\n", offset, end) >= 0 else b"\r"
    line_breaks = data.count(newline, offset, end)
    first_end = data.find(newline, offset, end)
    first_line = data[offset : end if first_end < 0 else first_end]
    try:
        raw_header = next(csv.reader([first_line.decode("utf-8").rstrip("\r")], delimiter=dialect.delimiter))
    except UnicodeDecodeError:
        return None, "encoding"
    except (StopIteration, csv.Error):
        return None, "layout"
    _check_width(raw_header, name)
    header = _unique_headers(raw_header)
    ragged: list[int] = []

    def on_invalid(_row: object) -> str:
        ragged.append(1)
        return "skip"

    try:
        arrow = pacsv.read_csv(
            pa.BufferReader(pa.py_buffer(data).slice(offset, end - offset)),
            read_options=pacsv.ReadOptions(column_names=header, skip_rows=1, use_threads=True, block_size=16 << 20),
            parse_options=pacsv.ParseOptions(delimiter=dialect.delimiter, newlines_in_values=False, invalid_row_handler=on_invalid),
            convert_options=pacsv.ConvertOptions(column_types={h: pa.string() for h in header}, strings_can_be_null=False, quoted_strings_can_be_null=False),
        )
    except pa.ArrowInvalid as exc:
        return None, "encoding" if "utf8" in str(exc).lower() or "utf-8" in str(exc).lower() else "layout"
    except pa.ArrowNotImplementedError:
        return None, "layout"
    if ragged or arrow.num_rows != line_breaks:
        return None, "layout"  # blank lines, multi-line cells or ragged rows: use the exact reader
    columns = {h: arrow.column(h).combine_chunks() for h in header}
    blank = _blank_mask(columns, arrow.num_rows)
    row_numbers = np.arange(2, arrow.num_rows + 2, dtype=np.int64)
    if blank.any():
        keep = pa.array(~blank)
        columns = {h: pc.filter(c, keep) for h, c in columns.items()}
        row_numbers = row_numbers[~blank]
    return CsvTable(name, header, columns, row_numbers, encoding, dialect.delimiter, dialect.decimal_comma, blank_rows=int(blank.sum())), ""


def _blank_mask(columns: dict[str, pa.Array], n: int) -> np.ndarray:
    """Records whose every cell is empty or whitespace."""
    blank = np.ones(n, dtype=bool)
    for column in columns.values():
        filled = pc.not_equal(pc.utf8_trim_whitespace(column), "").to_numpy(zero_copy_only=False)
        blank &= ~filled
        if not blank.any():
            break
    return blank


def _check_width(header: Sequence[str], name: str) -> None:
    """InputError for a header with more than MAX_COLUMNS columns."""
    if len(header) > MAX_COLUMNS:
        raise InputError(
            f"{name}: the header row has {len(header):,} columns; at most {MAX_COLUMNS:,} are supported "
            "(check that this is the right file and that it has one record per line)"
        )


def _read_exact(text: str, name: str, encoding: str, dialect: Dialect) -> CsvTable:
    """Python's csv module, tracking the line each record starts on (slower, exact)."""
    reader = csv.reader(io.StringIO(text, newline=""), delimiter=dialect.delimiter)
    try:
        raw_header = next(reader)
    except StopIteration as exc:
        raise InputError(f"{name} has no header row") from exc
    _check_width(raw_header, name)
    header = _unique_headers(raw_header)
    width = len(header)
    cells: list[list[str]] = [[] for _ in header]
    row_numbers: list[int] = []
    errors: list[RowError] = []
    raw_rows: dict[int, list[str]] = {}
    blank = 0
    line = reader.line_num + 1
    try:
        for record in reader:
            start, line = line, reader.line_num + 1
            if not any(c.strip() for c in record):
                blank += 1
                continue
            if len(record) != width:
                reason = f"has {len(record)} fields, the header has {width}"
                errors.append(RowError(name, start, "", dialect.delimiter.join(record)[:200], reason, -1))
                raw_rows[start] = record
                continue
            for position, value in enumerate(record):
                cells[position].append(value)
            row_numbers.append(start)
    except csv.Error as exc:
        raise InputError(f"{name} line {reader.line_num}: not valid CSV ({exc})") from exc
    columns = {h: pa.array(values, type=pa.string()) for h, values in zip(header, cells)}
    return CsvTable(name, header, columns, np.asarray(row_numbers, dtype=np.int64), encoding, dialect.delimiter,
                    dialect.decimal_comma, errors, blank, raw_rows)


# ---------------------------------------------------------------------------------------------
# Header matching
# ---------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class ColumnSpec:
    """A canonical column of an import kind."""

    name: str
    required: bool = False
    synonyms: tuple[str, ...] = ()


def normalise_header(name: str) -> str:
    """'  Prompt Tokens (UTC) ' -> 'prompt_tokens_utc': lower case, runs of non-alphanumerics -> '_'."""
    return re.sub(r"[^0-9a-z]+", "_", name.strip().lstrip("\ufeff").lower()).strip("_")


@dataclass
class ColumnMapping:
    """Which file column feeds each canonical column, and what was left over."""

    columns: dict[str, str]  # canonical -> header as written
    missing_required: list[str]
    ignored: list[str]

    def renamed(self) -> list[tuple[str, str]]:
        """(header as written, canonical) pairs where the two differ."""
        return [(raw, canonical) for canonical, raw in self.columns.items() if raw != canonical]

    def describe(self) -> str:
        """A one-line account of the mapping for the user."""
        parts = []
        renamed = self.renamed()
        if renamed:
            parts.append("columns mapped: " + ", ".join(f"'{raw}' -> {canonical}" for raw, canonical in renamed))
        if self.ignored:
            parts.append("ignored columns: " + ", ".join(f"'{c}'" for c in self.ignored))
        return "; ".join(parts) if parts else "all columns matched by name"


def match_header(header: Sequence[str], specs: Sequence[ColumnSpec]) -> ColumnMapping:
    """Map headers to canonical columns: exact name, then normalised name, then synonyms."""
    normalised = {h: normalise_header(h) for h in header}
    taken: set[str] = set()
    mapping: dict[str, str] = {}
    for spec in specs:
        candidates = [spec.name, *spec.synonyms]
        wanted = [normalise_header(c) for c in candidates]
        chosen = next((h for h in header if h == spec.name and h not in taken), None)
        if chosen is None:
            for target in wanted:
                chosen = next((h for h in header if normalised[h] == target and h not in taken), None)
                if chosen is not None:
                    break
        if chosen is not None:
            mapping[spec.name] = chosen
            taken.add(chosen)
    missing = [s.name for s in specs if s.required and s.name not in mapping]
    ignored = [h for h in header if h not in taken]
    return ColumnMapping(mapping, missing, ignored)


# ---------------------------------------------------------------------------------------------
# Validation
# ---------------------------------------------------------------------------------------------

_INT_TEXT = r"^[+-]?\d+$"
_FLOAT_INTEGRAL = re.compile(r"^[+-]?\d+\.0*$")
_THOUSANDS = re.compile(r"^[+-]?\d{1,3}(,\d{3})+$")
_DECIMAL_TEXT = re.compile(r"^(?P<sign>[+-]?)(?P<int>\d*)(?:\.(?P<frac>\d*))?$")
_TRUE = {"true", "t", "yes", "y", "1", "1.0"}
_FALSE = {"false", "f", "no", "n", "0", "0.0", ""}


class Validator:
    """Parse a table's canonical columns, collecting a RowError for every bad cell.

    `values = v.integer("input_tokens")` returns an int64 array for every record; records with
    a bad value get the default and are marked in `v.bad`. After all columns are parsed,
    `v.good` selects the records to import and `v.errors` lists the problems.
    """

    def __init__(self, table: CsvTable, mapping: ColumnMapping) -> None:
        self.table = table
        self.mapping = mapping
        self.errors: list[RowError] = list(table.errors)
        self.bad = np.zeros(table.rows, dtype=bool)
        self._trimmed: dict[str, pa.Array] = {}

    # -- access ----------------------------------------------------------------------------

    @property
    def n(self) -> int:
        """Number of records."""
        return self.table.rows

    @property
    def good(self) -> np.ndarray:
        """Mask of records without any error."""
        return ~self.bad

    def has(self, column: str) -> bool:
        """True when the file has this canonical column."""
        return column in self.mapping.columns

    def strings(self, column: str) -> pa.Array | None:
        """The column's cells, whitespace-trimmed, or None when the file lacks it."""
        if column not in self.mapping.columns:
            return None
        if column not in self._trimmed:
            self._trimmed[column] = pc.utf8_trim_whitespace(self.table.columns[self.mapping.columns[column]])
        return self._trimmed[column]

    def reject(self, mask: np.ndarray, column: str, reason: str | Sequence[str], values: pa.Array | np.ndarray | None = None) -> None:
        """Record an error for every record in `mask` (reason may vary per record)."""
        rows = np.flatnonzero(mask)
        if rows.size == 0:
            return
        self.bad[rows] = True
        if values is None:
            values = self.strings(column)
        texts = _take_text(values, rows) if values is not None else [""] * rows.size
        reasons = [reason] * rows.size if isinstance(reason, str) else [reason[i] for i in rows]
        shown = self.mapping.columns.get(column, column)
        for i, text, why in zip(rows.tolist(), texts, reasons):
            self.errors.append(RowError(self.table.name, int(self.table.row_numbers[i]), shown, text, why, i))

    # -- parsers ---------------------------------------------------------------------------

    def text(self, column: str, *, required: bool = False, default: str = "", lower: bool = False) -> np.ndarray:
        """Text cells (object array); empty required cells are errors."""
        values = self.strings(column)
        if values is None:
            return _full_object(self.n, default)
        if lower:
            values = pc.utf8_lower(values)
        out = _to_objects(values)
        empty = pc.equal(values, "").to_numpy(zero_copy_only=False)
        if empty.any():
            if required:
                self.reject(empty, column, "missing required value")
            out = out.copy()
            out[empty] = default
        return out

    def integer(self, column: str, *, default: int = 0, minimum: int | None = 0, required: bool = False, what: str = "value") -> np.ndarray:
        """Whole numbers as int64 ('10.0' and '1,234' accepted); negative below `minimum`."""
        values = self.strings(column)
        if values is None:
            return np.full(self.n, default, dtype=np.int64)
        empty = pc.equal(values, "").to_numpy(zero_copy_only=False)
        filled = pc.if_else(pa.array(empty), pa.scalar("0"), values)
        try:
            out = pc.cast(filled, pa.int64()).to_numpy(zero_copy_only=False).copy()
        except (pa.ArrowInvalid, pa.ArrowNotImplementedError):
            out = self._integer_slow(filled, column)
        if empty.any():
            if required:
                self.reject(empty, column, "missing required value")
            out[empty] = default
        if minimum is not None:
            low = (out < minimum) & ~self.bad
            if low.any():
                reason = f"negative {what}" if minimum == 0 else f"{what} must be at least {minimum}"
                self.reject(low, column, reason)
                out[low] = default
        return out

    def _integer_slow(self, values: pa.Array, column: str) -> np.ndarray:
        if not self.table.decimal_comma:
            try:  # a column of floats such as '59200.0' (OpenAI exports): exact below 2**53
                floats = pc.cast(values, pa.float64()).to_numpy(zero_copy_only=False)
            except (pa.ArrowInvalid, pa.ArrowNotImplementedError):
                floats = None
            if floats is not None and np.all(np.isfinite(floats)) and np.all(floats == np.round(floats)) and np.all(np.abs(floats) < 2**53):
                return floats.astype(np.int64)
        # plain integers of at most 18 digits always fit int64
        plain = pc.match_substring_regex(values, r"^[+-]?\d{1,18}$").to_numpy(zero_copy_only=False)
        out = np.zeros(self.n, dtype=np.int64)
        if plain.any():  # arrow does not parse a leading '+': drop it
            unsigned = pc.replace_substring_regex(pc.filter(values, pa.array(plain)), r"^\+", "")
            out[plain] = pc.cast(unsigned, pa.int64()).to_numpy(zero_copy_only=False)
        reasons: dict[int, str] = {}
        for i in np.flatnonzero(~plain).tolist():
            text = values[i].as_py()
            if self.table.decimal_comma:
                text = text.replace(",", ".")
            if _FLOAT_INTEGRAL.match(text):
                number = int(text.split(".")[0])
            elif _THOUSANDS.match(text) or re.match(_INT_TEXT, text):
                number = int(text.replace(",", ""))
            else:
                reasons[i] = _number_problem(text, whole=True)
                continue
            if abs(number) >= 2**62:
                reasons[i] = "number too large"
            else:
                out[i] = number
        if reasons:
            mask = np.zeros(self.n, dtype=bool)
            mask[list(reasons)] = True
            self.reject(mask, column, [reasons.get(i, "") for i in range(self.n)], values)
        return out

    def number(self, column: str, *, default: float = 0.0, minimum: float | None = 0.0, what: str = "value") -> np.ndarray:
        """Non-money decimal quantities (seconds) as float64."""
        values = self.strings(column)
        if values is None:
            return np.full(self.n, default, dtype=np.float64)
        if self.table.decimal_comma:
            values = pc.replace_substring(values, ",", ".")
        empty = pc.equal(values, "").to_numpy(zero_copy_only=False)
        filled = pc.if_else(pa.array(empty), pa.scalar("0"), values)
        try:
            out = pc.cast(filled, pa.float64()).to_numpy(zero_copy_only=False).copy()
        except (pa.ArrowInvalid, pa.ArrowNotImplementedError):
            out = np.zeros(self.n, dtype=np.float64)
            reasons: dict[int, str] = {}
            for i, text in enumerate(filled.to_pylist()):
                try:
                    out[i] = float(Decimal(text))
                except (InvalidOperation, ValueError):
                    reasons[i] = _number_problem(text, whole=False)
            if reasons:
                mask = np.zeros(self.n, dtype=bool)
                mask[list(reasons)] = True
                self.reject(mask, column, [reasons.get(i, "") for i in range(self.n)], filled)
        bad_float = ~np.isfinite(out)
        if bad_float.any():
            self.reject(bad_float & ~self.bad, column, "not a finite number")
            out[bad_float] = default
        out[empty] = default
        if minimum is not None:
            low = (out < minimum) & ~self.bad
            if low.any():
                self.reject(low, column, f"negative {what}")
                out[low] = default
        return out

    def usd_pico(self, column: str, *, minimum: int | None = 0) -> np.ndarray:
        """Dollar amounts written as text -> integer pico-dollars (object array, None = empty).

        Exact: no float on the way; more than 12 decimals are rounded half-even.
        """
        values = self.strings(column)
        out = np.full(self.n, None, dtype=object)
        if values is None:
            return out
        if self.table.decimal_comma:
            values = pc.replace_substring(values, ",", ".")
        parsed, problems = _decimal_to_scaled(values, 12, too_large=f"amount too large (at most {_MAX_USD} per row)")
        empty = pc.equal(values, "").to_numpy(zero_copy_only=False)
        mask = np.zeros(self.n, dtype=bool)
        if problems:
            mask[list(problems)] = True
            self.reject(mask, column, [problems.get(i, "") for i in range(self.n)], values)
        keep = ~empty & ~mask
        out[keep] = parsed[keep]
        if minimum is not None:
            low = np.array([v is not None and v < minimum for v in out], dtype=bool) if keep.any() else np.zeros(self.n, dtype=bool)
            if low.any():
                self.reject(low, column, "negative amount")
                out[low] = None
        return out

    def boolean(self, column: str, *, default: bool = False) -> np.ndarray:
        """true/false, yes/no, 1/0 (any case; empty = default) as int64 0/1."""
        values = self.strings(column)
        if values is None:
            return np.full(self.n, int(default), dtype=np.int64)
        encoded = pc.dictionary_encode(values)
        words = [w.lower() for w in encoded.dictionary.to_pylist()]
        indices = encoded.indices.to_numpy(zero_copy_only=False)
        truthy = np.array([w in _TRUE for w in words], dtype=bool)[indices]
        falsy = np.array([w in _FALSE for w in words], dtype=bool)[indices]
        unknown = ~truthy & ~falsy
        if unknown.any():
            self.reject(unknown, column, "not true/false")
        out = truthy.astype(np.int64)
        empty = pc.equal(values, "").to_numpy(zero_copy_only=False)
        out[empty] = int(default)
        return out

    def timestamp_us(self, column: str, *, required: bool = True) -> np.ndarray:
        """ISO 8601 (UTC unless an offset is given) or Unix seconds -> int64 microseconds."""
        values = self.strings(column)
        if values is None:
            return np.zeros(self.n, dtype=np.int64)
        out, unparsed = parse_times(values)
        empty = pc.equal(values, "").to_numpy(zero_copy_only=False)
        if required and empty.any():
            self.reject(empty, column, "missing required value")
        problem = unparsed & ~empty
        if problem.any():
            self.reject(problem, column, "unparseable time (use ISO 8601 like 2025-10-05T14:30:00Z, or Unix seconds)")
        out[unparsed] = 0
        return out

    def date(self, column: str, *, required: bool = False) -> np.ndarray:
        """Dates (ISO 8601 date or time, or Unix seconds) -> 'YYYY-MM-DD' text ('' when empty)."""
        values = self.strings(column)
        if values is None:
            return _full_object(self.n, "")
        # 20251001 is a compact date here, not Unix seconds
        values = pc.replace_substring_regex(values, r"^(\d{4})(\d{2})(\d{2})$", r"\1-\2-\3")
        micros, unparsed = parse_times(values)
        empty = pc.equal(values, "").to_numpy(zero_copy_only=False)
        if required and empty.any():
            self.reject(empty, column, "missing required value")
        problem = unparsed & ~empty
        if problem.any():
            self.reject(problem, column, "unparseable date (use YYYY-MM-DD)")
        days = np.datetime_as_string(micros.astype("datetime64[us]"), unit="D").astype(object)
        days[unparsed | empty] = ""
        return days


def _to_objects(values: pa.Array) -> np.ndarray:
    """Arrow strings -> numpy object array. Columns with few distinct values (customers,
    models, tiers) go through a dictionary, so each distinct string becomes one Python object."""
    n = len(values)
    if n > 10_000:
        sample = values.slice(0, 5_000)
        if pc.count_distinct(sample).as_py() < 2_500:
            encoded = pc.dictionary_encode(values)
            words = np.empty(len(encoded.dictionary), dtype=object)
            words[:] = encoded.dictionary.to_pylist()
            return words[encoded.indices.to_numpy(zero_copy_only=False)]
    return values.to_numpy(zero_copy_only=False).astype(object, copy=False)


def _full_object(n: int, value: object) -> np.ndarray:
    """n references to one object (np.full would build a new str per element)."""
    out = np.empty(n, dtype=object)
    out.fill(value)
    return out


def _take_text(values: pa.Array | np.ndarray, rows: np.ndarray) -> list[str]:
    if isinstance(values, np.ndarray):
        return ["" if v is None else str(v) for v in values[rows]]
    return ["" if v is None else str(v) for v in values.take(pa.array(rows)).to_pylist()]


def _number_problem(text: str, *, whole: bool) -> str:
    cleaned = text.strip()
    try:
        value = Decimal(cleaned)
    except InvalidOperation:
        return "not a number"
    if not value.is_finite():
        return "not a finite number"
    if whole and value != value.to_integral_value():
        return "not a whole number"
    return "not a number"


def _decimal_to_scaled(values: pa.Array, places: int, *, limit: int = MAX_PICO,
                       too_large: str = "amount too large") -> tuple[np.ndarray, dict[int, str]]:
    """Decimal text -> integer units of 10**-places (object array of Python ints) and problems.

    Plain decimals ('12.5', '-0.000123') are split and scaled in bulk; anything else (exponents,
    too many digits) goes through Decimal one value at a time. A value whose scaled magnitude
    is above `limit` is a problem (`too_large`), found from its exponent before any arithmetic.
    """
    limit_digits = len(str(limit)) - places
    n = len(values)
    out = np.full(n, None, dtype=object)
    problems: dict[int, str] = {}
    # at most 6 integer digits: value * 10**12 stays inside int64; larger amounts take the Decimal path
    simple = pc.match_substring_regex(values, r"^[+-]?\d{1,6}(\.\d{0,%d})?$" % places).to_numpy(zero_copy_only=False)
    if simple.any():
        subset = pc.filter(values, pa.array(simple))
        parts = pc.split_pattern(subset, ".", max_splits=1)
        whole = pc.list_element(parts, 0)
        sign = pc.starts_with(whole, "-").to_numpy(zero_copy_only=False)
        whole = pc.replace_substring_regex(whole, r"^[+-]", "")
        whole = pc.if_else(pc.equal(whole, ""), pa.scalar("0"), whole)
        has_frac = pc.greater(pc.list_value_length(parts), 1)
        frac = pc.if_else(has_frac, pc.list_element(pc.if_else(has_frac, parts, pa.scalar(["", ""], type=parts.type)), 1), pa.scalar(""))
        frac = pc.utf8_rpad(frac, width=places, padding="0")
        scaled = pc.cast(whole, pa.int64()).to_numpy(zero_copy_only=False) * (10**places) + pc.cast(frac, pa.int64()).to_numpy(zero_copy_only=False)
        scaled = np.where(sign, -scaled, scaled)
        out[simple] = scaled.astype(object)
    quantum = Decimal(1).scaleb(-places)
    for i in np.flatnonzero(~simple).tolist():
        text = values[i].as_py()
        if text == "":
            continue
        try:
            value = Decimal(text)
        except InvalidOperation:
            problems[i] = "not a number"
            continue
        if not value.is_finite():
            problems[i] = "not a finite number"
            continue
        if value.is_zero() or value.adjusted() < -places - 1:  # rounds to 0 (1e-999999 included)
            out[i] = 0
            continue
        if value.adjusted() > limit_digits:  # 1e999999: refused before any arithmetic
            problems[i] = too_large
            continue
        scaled = int(value.quantize(quantum, rounding=ROUND_HALF_EVEN).scaleb(places))  # one rounding, exact
        if abs(scaled) > limit:
            problems[i] = too_large
            continue
        out[i] = scaled
    return out, problems


_MAX_USD = f"${Decimal(MAX_PICO).scaleb(-12).quantize(Decimal('0.01'), rounding='ROUND_DOWN'):,}"
_NUMERIC = r"^\d+(\.\d+)?$"
_OFFSET = r"([zZ]|[+-]\d\d(:?\d\d)?)$"


def parse_times(values: pa.Array) -> tuple[np.ndarray, np.ndarray]:
    """Text -> (int64 epoch microseconds, mask of values that could not be parsed).

    Accepts ISO 8601 dates and times (naive = UTC; 'Z' or an offset converts to UTC) and Unix
    seconds (integer or decimal). Fast paths cover uniform columns; mixed ones are split.
    """
    n = len(values)
    out = np.zeros(n, dtype=np.int64)
    bad = np.zeros(n, dtype=bool)
    if n == 0:
        return out, bad
    empty = pc.equal(values, "").to_numpy(zero_copy_only=False)
    numeric = pc.match_substring_regex(values, _NUMERIC).to_numpy(zero_copy_only=False)
    if numeric.all():
        return _unix_seconds(values, out, bad)
    if not numeric.any() and not empty.any():
        for target in (pa.timestamp("us", tz="UTC"), pa.timestamp("us")):
            try:
                cast = pc.cast(values, target)
            except (pa.ArrowInvalid, pa.ArrowNotImplementedError):
                continue
            return cast.cast(pa.int64()).to_numpy(zero_copy_only=False).copy(), bad
    if numeric.any():
        sub_out, sub_bad = _unix_seconds(pc.filter(values, pa.array(numeric)), np.zeros(int(numeric.sum()), dtype=np.int64), np.zeros(int(numeric.sum()), dtype=bool))
        out[numeric] = sub_out
        bad[numeric] = sub_bad
    rest = ~numeric & ~empty
    if rest.any():
        texts = pd.Series(pc.filter(values, pa.array(rest)).to_numpy(zero_copy_only=False), dtype=object)
        parsed = pd.to_datetime(texts, format="ISO8601", utc=True, errors="coerce")
        missing = parsed.isna().to_numpy()
        micros = parsed.dt.as_unit("us").to_numpy(dtype="datetime64[us]").astype(np.int64)
        micros[missing] = 0
        out[rest] = micros
        bad[rest] = missing
    bad |= empty
    return out, bad


def _unix_seconds(values: pa.Array, out: np.ndarray, bad: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    seconds = pc.cast(values, pa.float64()).to_numpy(zero_copy_only=False)
    out_of_range = (seconds < 0) | (seconds >= MAX_UNIX_SECONDS)
    out[:] = np.rint(np.where(out_of_range, 0, seconds) * 1_000_000).astype(np.int64)
    bad |= out_of_range
    return out, bad


# ---------------------------------------------------------------------------------------------
# Error file
# ---------------------------------------------------------------------------------------------


def write_error_file(path: str | Path, errors: Iterable[RowError], table: CsvTable | None) -> Path:
    """Write one line per error: error_row, error_column, error_value, error_reason, then the
    original row's cells under the file's own headers (so it can be fixed and re-imported)."""
    path = Path(path)
    errors = sorted(errors, key=lambda e: (e.row, e.column))
    header = list(table.header) if table is not None else []
    with path.open("w", newline="", encoding="utf-8") as handle:
        writer = csv.writer(handle)
        writer.writerow(["error_row", "error_column", "error_value", "error_reason", *header])
        for error in errors:
            original = table.original_row(error) if table is not None else []
            writer.writerow([error.row, error.column, error.value, error.reason, *original])
    return path
