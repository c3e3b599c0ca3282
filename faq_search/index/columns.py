"""Filterable metadata columns: typed, stored columnar in the bundle, evaluated to an entry mask.

``faq-search index --metadata-column plan --metadata-column tags:list`` makes
those metadata columns filterable. Each has a type, given after a colon or
inferred from its values: ``number`` (every value parses as a number),
``boolean`` (every value is true/false, yes/no or 1/0), else ``string``;
``list`` is never inferred (its items are separated by ``|``: ``billing|refunds``).

In the bundle they live under ``filters/`` (checksummed like every file):
``columns.json`` lists name, type and, for string and list columns, the
distinct values; per column one ``.npy`` array (no pickle) holds, per entry,
a value code (string, -1 = missing), the number (NaN = missing) or 0/1/-1
(boolean), and a list column adds the per-entry offsets into its item codes.

:meth:`FilterColumns.mask` turns a parsed filter (:mod:`.filters`) into a
boolean array over entries with numpy; a field or value the index does not
know is a :class:`~faq_search.index.filters.FilterError` naming the known ones.
"""

from __future__ import annotations

import bisect
import enum
import io
import json
import math
import threading
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from faq_search.bundle.layout import FILTERS_DIR
from faq_search.corpus import FaqEntry
from faq_search.errors import BundleError, InputError
from faq_search.index.filters import And, Comparison, FilterError, Node, Not, parse_all

MASKS_KEPT = 256
"""Filters whose entry masks an index keeps."""

COLUMNS_FILE = f"{FILTERS_DIR}/columns.json"
COLUMNS_VERSION = 1
LIST_SEPARATOR = "|"
TRUE = frozenset({"true", "yes", "1"})
FALSE = frozenset({"false", "no", "0"})
_SHOWN_VALUES = 12  # known values named in an error message


class ColumnType(str, enum.Enum):
    """How a filterable column's values are read and compared."""

    STRING = "string"
    NUMBER = "number"
    BOOLEAN = "boolean"
    LIST = "list"


@dataclass(frozen=True)
class ColumnSpec:
    """A column the user made filterable: its name and type (None: inferred from the values)."""

    name: str
    type: ColumnType | None = None

    @classmethod
    def parse(cls, text: str) -> ColumnSpec:
        """``"plan"`` or ``"tags:list"`` (the last colon separates the type when it names one)."""
        name, _, kind = text.rpartition(":")
        if name and kind.lower() in {t.value for t in ColumnType}:
            return cls(name.strip(), ColumnType(kind.lower()))
        if not text.strip():
            raise InputError("--metadata-column needs a column name, e.g. --metadata-column plan")
        return cls(text.strip())


@dataclass(frozen=True)
class Column:
    """One filterable column over every entry, in entry order."""

    name: str
    type: ColumnType
    data: np.ndarray  # codes (int32, -1 missing), numbers (float64, NaN missing) or booleans (int8, -1 missing)
    values: tuple[str, ...] = ()  # string and list: the distinct values, sorted; a code is a position here
    offsets: np.ndarray | None = None  # list: entry e's item codes are data[offsets[e]:offsets[e+1]]

    def describe(self) -> dict[str, Any]:
        """Name, type and (string, list, boolean) the known values: what the page's filter chips show."""
        out: dict[str, Any] = {"name": self.name, "type": self.type.value}
        if self.type in (ColumnType.STRING, ColumnType.LIST):
            out["values"] = list(self.values)
        elif self.type is ColumnType.BOOLEAN:
            out["values"] = ["true", "false"]
        return out


def build_columns(entries: Sequence[FaqEntry], specs: Sequence[ColumnSpec]) -> FilterColumns:
    """The typed columns of ``entries`` for ``specs``; a column no entry has is an error naming the ones there are."""
    present = sorted({key for entry in entries for key in entry.metadata})
    columns: list[Column] = []
    for spec in dict((s.name, s) for s in specs).values():
        if spec.name not in present:
            known = ", ".join(present) if present else "none"
            raise InputError(
                f"no entry has a metadata column {spec.name!r}; filterable columns must be metadata columns "
                f"of the FAQ file (found: {known})"
            )
        raw = [entry.metadata.get(spec.name) for entry in entries]
        columns.append(_column(spec.name, spec.type or _infer(raw), raw))
    return FilterColumns(tuple(columns), len(entries))


def _infer(raw: Sequence[str | None]) -> ColumnType:
    given = [value.strip().lower() for value in raw if value is not None and value.strip()]
    if given and all(v in TRUE or v in FALSE for v in given) and not all(v in {"0", "1"} for v in given):
        return ColumnType.BOOLEAN
    if given and all(_number(v) is not None for v in given):
        return ColumnType.NUMBER
    return ColumnType.STRING


def _number(text: str) -> float | None:
    try:
        value = float(text)
    except ValueError:
        return None
    return value if math.isfinite(value) else None


def _column(name: str, kind: ColumnType, raw: Sequence[str | None]) -> Column:
    texts = [None if value is None or not value.strip() else value.strip() for value in raw]
    if kind is ColumnType.NUMBER:
        numbers = [math.nan if t is None else _number(t) for t in texts]
        bad = next((t for t, n in zip(texts, numbers, strict=True) if n is None), None)
        if bad is not None:
            raise InputError(f"metadata column {name!r} is a number column, but holds {bad!r}; fix the value")
        return Column(name, kind, np.asarray(numbers, dtype=np.float64))
    if kind is ColumnType.BOOLEAN:
        flags = [-1 if t is None else 1 if t.lower() in TRUE else 0 if t.lower() in FALSE else 2 for t in texts]
        if 2 in flags:
            bad = texts[flags.index(2)]
            raise InputError(f"metadata column {name!r} is a boolean column, but holds {bad!r}; use true or false")
        return Column(name, kind, np.asarray(flags, dtype=np.int8))
    if kind is ColumnType.LIST:
        items = [[] if t is None else [i.strip() for i in t.split(LIST_SEPARATOR) if i.strip()] for t in texts]
        values = tuple(sorted({i for row in items for i in row}))
        code = {value: position for position, value in enumerate(values)}
        lengths = np.asarray([len(row) for row in items], dtype=np.int64)
        offsets = np.concatenate([[0], np.cumsum(lengths)]).astype(np.int64)
        data = np.asarray([code[i] for row in items for i in row], dtype=np.int32)
        return Column(name, kind, data, values, offsets)
    values = tuple(sorted({t for t in texts if t is not None}))
    code = {value: position for position, value in enumerate(values)}
    return Column(name, kind, np.asarray([-1 if t is None else code[t] for t in texts], dtype=np.int32), values)


class FilterColumns:
    """An index's filterable columns, and filters evaluated over them."""

    def __init__(self, columns: Sequence[Column], entry_count: int) -> None:
        self.columns = {column.name: column for column in columns}
        self.entry_count = entry_count
        self._list_entries: dict[str, np.ndarray] = {}  # per list column: the entry of each item
        self._masks: dict[str | tuple[str, ...], np.ndarray] = {}  # recent filters' masks, by filter text
        self._lock = threading.Lock()

    def filter_mask(self, where: str | Sequence[str]) -> np.ndarray:
        """The entries a filter text keeps (several texts are joined with ``and``), read-only.

        Recent filters' masks are kept, so a service asking with the same filter
        parses and evaluates it once. FilterError (an InputError) for a text
        that does not parse or names an unknown field or value.
        """
        key = where if isinstance(where, str) else tuple(where)
        mask = self._masks.get(key)
        if mask is None:
            mask = self.mask(parse_all(where))
            mask.flags.writeable = False
            with self._lock:
                if len(self._masks) >= MASKS_KEPT:
                    self._masks.clear()
                self._masks[key] = mask
        return mask

    @property
    def specs(self) -> tuple[ColumnSpec, ...]:
        return tuple(ColumnSpec(c.name, c.type) for c in self.columns.values())

    def describe(self) -> list[dict[str, Any]]:
        return [column.describe() for column in self.columns.values()]

    def mask(self, node: Node) -> np.ndarray:
        """The entries the filter keeps, as a boolean array (iterative over the tree: no deep recursion)."""
        results: dict[int, np.ndarray] = {}
        stack: list[tuple[Node, bool]] = [(node, False)]
        while stack:
            item, ready = stack.pop()
            if isinstance(item, Comparison):
                results[id(item)] = self._compare(item)
            elif not ready:
                stack.append((item, True))
                children = [item.operand] if isinstance(item, Not) else list(item.operands)
                stack.extend((child, False) for child in children)
            elif isinstance(item, Not):
                results[id(item)] = ~results.pop(id(item.operand))
            else:
                parts = [results.pop(id(child)) for child in item.operands]
                combine = np.logical_and if isinstance(item, And) else np.logical_or
                out = parts[0].copy()
                for part in parts[1:]:
                    combine(out, part, out=out)
                results[id(item)] = out
        return results[id(node)]

    def _compare(self, node: Comparison) -> np.ndarray:
        column = self.columns.get(node.field)
        if column is None:
            known = ", ".join(self.columns) or "none (rebuild the index with --metadata-column NAME)"
            raise FilterError(f"unknown filter field {node.field!r}; the filterable fields are: {known}")
        if column.type is ColumnType.NUMBER:
            return self._numbers(column, node)
        if node.op not in ("=", "!=", "in"):
            raise FilterError(f"{node.op} needs a number field; {column.name!r} is a {column.type.value} field")
        if column.type is ColumnType.BOOLEAN:
            wanted = {_boolean(column.name, value) for value in node.values}
            hit = np.isin(column.data, np.asarray(sorted(wanted), dtype=np.int8))
        else:
            codes = np.asarray([_code(column, value) for value in node.values], dtype=np.int32)
            hit = np.isin(column.data, codes) if column.type is ColumnType.STRING else self._holds(column, codes)
        return ~hit if node.op == "!=" else hit

    def _numbers(self, column: Column, node: Comparison) -> np.ndarray:
        numbers = []
        for value in node.values:
            number = _number(value)
            if number is None:
                raise FilterError(f"{column.name!r} is a number field; {value!r} is not a number")
            numbers.append(number)
        data = column.data
        with np.errstate(invalid="ignore"):
            if node.op == "in":
                return np.isin(data, np.asarray(numbers))
            compare = {"=": np.equal, "!=": np.not_equal, "<": np.less, "<=": np.less_equal, ">": np.greater}
            hit: np.ndarray = compare.get(node.op, np.greater_equal)(data, numbers[0])
        return hit | np.isnan(data) if node.op == "!=" else hit

    def _holds(self, column: Column, codes: np.ndarray) -> np.ndarray:
        """Per entry: does its list hold any of ``codes``."""
        owner = self._list_entries.get(column.name)
        if owner is None or column.offsets is None:
            offsets = column.offsets if column.offsets is not None else np.zeros(self.entry_count + 1, np.int64)
            owner = np.repeat(np.arange(self.entry_count), np.diff(offsets))
            self._list_entries[column.name] = owner
        out = np.zeros(self.entry_count, dtype=bool)
        out[owner[np.isin(column.data, codes)]] = True
        return out

    # -- bundle files ---------------------------------------------------------

    def to_files(self) -> dict[str, bytes]:
        """``filters/columns.json`` and one ``.npy`` per array, by bundle file name."""
        listed: list[dict[str, Any]] = []
        files: dict[str, bytes] = {}
        for position, column in enumerate(self.columns.values()):
            record: dict[str, Any] = {"name": column.name, "type": column.type.value, "data": f"{position}.npy"}
            files[f"{FILTERS_DIR}/{position}.npy"] = _npy(column.data)
            if column.type in (ColumnType.STRING, ColumnType.LIST):
                record["values"] = list(column.values)
            if column.offsets is not None:
                record["offsets"] = f"{position}.offsets.npy"
                files[f"{FILTERS_DIR}/{position}.offsets.npy"] = _npy(column.offsets)
            listed.append(record)
        header = {"version": COLUMNS_VERSION, "entries": self.entry_count, "columns": listed}
        files[COLUMNS_FILE] = json.dumps(header, ensure_ascii=False).encode("utf-8")
        return files

    @classmethod
    def from_files(cls, files: Mapping[str, bytes], entry_count: int) -> FilterColumns | None:
        """The columns :meth:`to_files` wrote (None when the bundle has none); BundleError when they do not fit."""
        if COLUMNS_FILE not in files:
            return None
        try:
            header = json.loads(files[COLUMNS_FILE].decode("utf-8"))
            if header.get("version") != COLUMNS_VERSION or header.get("entries") != entry_count:
                raise ValueError("another version or entry count")
            columns = [_read_column(record, files, entry_count) for record in header["columns"]]
        except (KeyError, TypeError, ValueError, AttributeError) as exc:
            raise BundleError(f"the filter columns in {FILTERS_DIR}/ are unusable ({exc}); rebuild the index") from None
        return cls(columns, entry_count)


def _read_column(record: Mapping[str, Any], files: Mapping[str, bytes], entry_count: int) -> Column:
    kind = ColumnType(record["type"])
    data = _array(files[f"{FILTERS_DIR}/{record['data']}"])
    values = tuple(str(v) for v in record.get("values", ()))
    offsets = _array(files[f"{FILTERS_DIR}/{record['offsets']}"]) if kind is ColumnType.LIST else None
    expected = {ColumnType.NUMBER: np.float64, ColumnType.BOOLEAN: np.int8}.get(kind, np.int32)
    rows = len(data) if offsets is None else len(offsets) - 1
    if data.dtype != expected or data.ndim != 1 or rows != entry_count:
        raise ValueError(f"column {record['name']!r} has the wrong shape or type")
    if kind in (ColumnType.STRING, ColumnType.LIST) and len(data) and int(data.max()) >= len(values):
        raise ValueError(f"column {record['name']!r} points at values it does not list")
    if offsets is not None and (offsets[0] != 0 or offsets[-1] != len(data) or np.any(np.diff(offsets) < 0)):
        raise ValueError(f"column {record['name']!r} has inconsistent list offsets")
    return Column(str(record["name"]), kind, data, values, offsets)


def _npy(array: np.ndarray) -> bytes:
    buffer = io.BytesIO()
    np.save(buffer, array, allow_pickle=False)
    return buffer.getvalue()


def _array(data: bytes) -> np.ndarray:
    return np.load(io.BytesIO(data), allow_pickle=False)


def _boolean(name: str, value: str) -> int:
    lowered = value.strip().lower()
    if lowered in TRUE or lowered in FALSE:
        return 1 if lowered in TRUE else 0
    raise FilterError(f"{name!r} is a boolean field; {value!r} is not true or false")


def _code(column: Column, value: str) -> int:
    """The position of ``value`` among the column's values; unknown values name the known ones."""
    position = bisect.bisect_left(column.values, value)
    if position < len(column.values) and column.values[position] == value:
        return position
    shown = ", ".join(column.values[:_SHOWN_VALUES]) or "none"
    more = f" (and {len(column.values) - _SHOWN_VALUES} more)" if len(column.values) > _SHOWN_VALUES else ""
    raise FilterError(f"unknown value {value!r} for filter field {column.name!r}; known values: {shown}{more}")
