"""The columnar bundle layout: the row table as ``.npy`` columns and the entries as an Arrow IPC file.

A bundle of a million entries in the JSON layout (``rows.json``,
``entries.jsonl``) must be parsed whole before the first question: seconds,
and a Python object per entry and per row. In the columnar layout the bundle
reader maps the files (:func:`faq_search.bundle.files.read_bundle`) and the
columns here are views over those mappings: an entry is decoded when it is
asked for (a match's entry), a row's field and digest likewise; nothing is
parsed at load. Neither format can hold code: ``.npy`` arrays of object dtype
are refused (no pickle), Arrow IPC holds plain typed columns.

What it is not: a database. Iterating a :class:`ColumnarEntries` decodes
every entry (an update or ``check`` does that, as they must read them all).
"""

from __future__ import annotations

import io
import json
from abc import abstractmethod
from collections.abc import Iterator, Sequence
from typing import Any, TypeVar, overload

import numpy as np

from faq_search.bundle.files import Content
from faq_search.corpus import FaqEntry
from faq_search.errors import BundleError

FIELD_CODES = ("question", "answer")
"""``rows/field.npy`` holds each row's field as an index into this tuple (uint8)."""

COLUMNAR_ENTRIES = 50_000
"""FAQs of at least this many entries are saved in the columnar layout; smaller ones keep readable JSON."""


T = TypeVar("T")


class LazySequence(Sequence[T]):
    """A read-only sequence that makes an item when it is read: subclasses give ``__len__`` and :meth:`item`."""

    @abstractmethod
    def item(self, position: int) -> T:
        """The item at ``position`` (negative counts from the end; IndexError outside)."""

    @overload
    def __getitem__(self, position: int) -> T: ...

    @overload
    def __getitem__(self, position: slice) -> list[T]: ...

    def __getitem__(self, position: int | slice) -> T | list[T]:
        if isinstance(position, slice):
            return [self.item(i) for i in range(*position.indices(len(self)))]
        return self.item(position)


class LazyColumn:
    """Marks a read-only column over a mapped bundle file: an owner keeps it as it is instead of copying it."""


def take_entries(entries: Sequence[FaqEntry], positions: Sequence[int]) -> list[FaqEntry]:
    """The entries at ``positions``: decoded together from a columnar table, else read one by one."""
    take = getattr(entries, "take", None)
    return list(take(positions)) if take is not None else [entries[p] for p in positions]


def take_questions(entries: Sequence[FaqEntry], positions: Sequence[int]) -> list[tuple[str, ...]]:
    """The questions of the entries at ``positions``: from a columnar table that column alone is decoded."""
    take = getattr(entries, "take_questions", None)
    return list(take(positions)) if take is not None else [e.questions for e in take_entries(entries, positions)]


def npy_bytes(array: np.ndarray) -> bytes:
    """``array`` in NumPy's ``.npy`` format (never pickled: object arrays are refused)."""
    if array.dtype.hasobject:
        raise ValueError("object arrays cannot be stored in a bundle")
    out = io.BytesIO()
    np.save(out, np.ascontiguousarray(array), allow_pickle=False)
    return out.getvalue()


def npy_view(data: Content, name: str) -> np.ndarray:
    """A read-only array over ``.npy`` content without copying it; BundleError for anything else."""
    try:
        head = io.BytesIO(bytes(data[:4096]))
        version = np.lib.format.read_magic(head)
        read_header = np.lib.format.read_array_header_1_0 if version == (1, 0) else np.lib.format.read_array_header_2_0
        shape, fortran, dtype = read_header(head)
        if dtype.hasobject or fortran:
            raise ValueError("object or Fortran-ordered arrays are not allowed")
        count = int(np.prod(shape, dtype=np.int64))
        array = np.frombuffer(data, dtype=dtype, count=count, offset=head.tell())
        return array.reshape(shape)
    except (ValueError, TypeError, OSError) as exc:
        raise BundleError(f"{name} is not a plain .npy array ({exc}); rebuild the index") from None


def entries_arrow(entries: Sequence[FaqEntry]) -> bytes:
    """The entries as an Arrow IPC file: id, answer, questions, aliases, metadata (a JSON object per entry)."""
    import pyarrow as pa

    table = pa.table(
        {
            "id": pa.array([e.id for e in entries], pa.string()),
            "answer": pa.array([e.answer for e in entries], pa.string()),
            "questions": pa.array([list(e.questions) for e in entries], pa.list_(pa.string())),
            "aliases": pa.array([list(e.aliases) for e in entries], pa.list_(pa.string())),
            "metadata": pa.array([json.dumps(e.metadata, ensure_ascii=False) for e in entries], pa.string()),
        }
    )
    sink = pa.BufferOutputStream()
    with pa.ipc.new_file(sink, table.schema) as writer:
        writer.write_table(table, max_chunksize=65_536)
    return bytes(sink.getvalue().to_pybytes())


class ColumnarEntries(LazyColumn, LazySequence[FaqEntry]):
    """The entries of a mapped ``entries.arrow``: a read-only sequence decoding an entry when it is read."""

    def __init__(self, data: Content, name: str = "entries.arrow") -> None:
        import pyarrow as pa

        try:
            table = pa.ipc.open_file(pa.py_buffer(data)).read_all()  # zero-copy over the mapping
            self._columns = {key: table.column(key) for key in ("id", "answer", "questions", "aliases", "metadata")}
        except (pa.ArrowException, KeyError, ValueError) as exc:
            raise BundleError(f"{name} is not a readable entry table ({exc}); rebuild the index") from None
        self._table = table
        self._batches: list[Any] | None = None  # the table's record batches, listed on first take()
        self._offsets = np.zeros(1, dtype=np.int64)
        self._data = data  # keeps the mapping alive as long as the columns

    def __len__(self) -> int:
        return int(self._table.num_rows)

    def item(self, position: int) -> FaqEntry:
        if position < 0:
            position += len(self)
        if not 0 <= position < len(self):
            raise IndexError("entry position out of range")
        values = {key: column[position].as_py() for key, column in self._columns.items()}
        return _entry(values)

    def take(self, positions: Sequence[int]) -> list[FaqEntry]:
        """The entries at ``positions``, decoded batch by batch (a pool's hundred candidates at once)."""
        return [_entry(row) for row in self._rows(positions)]

    def take_questions(self, positions: Sequence[int]) -> list[tuple[str, ...]]:
        """The questions of the entries at ``positions``: only that column is decoded (no answer, no metadata)."""
        return [tuple(row["questions"] or ()) for row in self._rows(positions, ["questions"])]

    def _rows(self, positions: Sequence[int], columns: list[str] | None = None) -> list[dict[str, Any]]:
        """The rows at ``positions`` as dicts (of ``columns`` only, if given), taken batch by batch.

        Each record batch is taken from on its own: ``take`` on the whole table would first join its
        batches (a copy of every entry).
        """
        chosen = np.asarray(positions, dtype=np.int64)
        if not len(chosen):
            return []
        if int(chosen.min()) < 0 or int(chosen.max()) >= len(self):
            raise IndexError("entry position out of range")
        if self._batches is None:
            self._batches = self._table.to_batches()
            self._offsets = np.cumsum([0] + [batch.num_rows for batch in self._batches])
        batch_of = np.searchsorted(self._offsets, chosen, side="right") - 1
        out: list[dict[str, Any] | None] = [None] * len(chosen)
        for batch in np.unique(batch_of).tolist():
            where = np.flatnonzero(batch_of == batch)
            source = self._batches[batch] if columns is None else self._batches[batch].select(columns)
            rows = source.take(chosen[where] - self._offsets[batch]).to_pylist()
            for at, row in zip(where.tolist(), rows, strict=True):
                out[at] = row
        return out  # type: ignore[return-value]  # every slot is filled

    def __iter__(self) -> Iterator[FaqEntry]:
        for batch in self._table.to_batches(max_chunksize=65_536):
            rows = batch.to_pydict()
            for i in range(batch.num_rows):
                yield _entry({key: rows[key][i] for key in self._columns})

    def __eq__(self, other: object) -> bool:
        if isinstance(other, Sequence) and not isinstance(other, str):
            return len(self) == len(other) and all(a == b for a, b in zip(self, other, strict=True))
        return NotImplemented

    __hash__ = None  # type: ignore[assignment]


def _entry(values: dict[str, Any]) -> FaqEntry:
    metadata = json.loads(values["metadata"]) if values["metadata"] else {}
    return FaqEntry(
        id=values["id"],
        answer=values["answer"],
        questions=tuple(values["questions"] or ()),
        metadata=metadata,
        aliases=tuple(values["aliases"] or ()),
    )


class CodedStrings(LazyColumn, LazySequence[str]):
    """Strings stored as a uint8 code per row (``codes[i]`` indexes ``names``), or as fixed-width ASCII."""

    def __init__(self, values: np.ndarray, names: Sequence[str] | None = None) -> None:
        self.values = values
        self.names = None if names is None else tuple(names)

    def __len__(self) -> int:
        return len(self.values)

    def item(self, position: int) -> str:
        value = self.values[position]
        return self.names[int(value)] if self.names is not None else bytes(value).decode("ascii")

    def __iter__(self) -> Iterator[str]:
        if self.names is not None:
            names = self.names
            return (names[code] for code in self.values.tolist())
        return (value.decode("ascii") for value in self.values.tolist())

    def __eq__(self, other: object) -> bool:
        if isinstance(other, Sequence) and not isinstance(other, str):
            return len(self) == len(other) and all(a == b for a, b in zip(self, other, strict=True))
        return NotImplemented

    __hash__ = None  # type: ignore[assignment]
