"""Reading FAQ files into validated :class:`FaqEntry` records.

An FAQ is a table with one answer per row, optionally a question (or several
paraphrases) and an id, plus any other columns, which are kept as metadata.
Files are read with pandas; every problem a user can fix is reported as an
:class:`~faq_search.errors.InputError` that says where it is and what to do.
"""

from __future__ import annotations

import hashlib
import math
import zipfile
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from faq_search.errors import InputError

if TYPE_CHECKING:
    import pandas as pd

FORMATS: dict[str, str] = {
    ".csv": "csv",
    ".tsv": "tsv",
    ".tab": "tsv",
    ".json": "json",
    ".jsonl": "jsonl",
    ".ndjson": "jsonl",
    ".parquet": "parquet",
    ".pq": "parquet",
    ".xlsx": "excel",
    ".xlsm": "excel",
}
"""File suffix -> format name. The format can also be given explicitly."""

_DEFAULT_ANSWER = "answer"
_DEFAULT_QUESTION = "question"
_DEFAULT_ID = "id"


@dataclass(frozen=True)
class FaqEntry:
    """One known answer of an FAQ.

    ``questions`` holds the FAQ's question for this answer, or several
    paraphrases of it, or nothing. ``metadata`` keeps every other column of the
    source row as text, so a bot can show a link or a category with the answer.
    """

    id: str
    answer: str
    questions: tuple[str, ...] = ()
    metadata: Mapping[str, str] = field(default_factory=dict)
    aliases: tuple[str, ...] = ()
    """Ids of further rows with the same answer, merged into this entry (see :func:`merge_duplicate_answers`)."""

    @property
    def question(self) -> str | None:
        """The first question of the entry, or None when it has none."""
        return self.questions[0] if self.questions else None

    @property
    def ids(self) -> tuple[str, ...]:
        """This entry's id, then the ids merged into it."""
        return (self.id, *self.aliases)

    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready view (used by the bundle and by ``--json`` output)."""
        return {
            "id": self.id,
            "ids": list(self.ids),
            "question": self.question,
            "questions": list(self.questions),
            "answer": self.answer,
            "metadata": dict(self.metadata),
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> FaqEntry:
        """Inverse of :meth:`to_dict` (``ids`` is absent from bundles written before merging existed)."""
        return cls(
            id=str(data["id"]),
            answer=str(data["answer"]),
            questions=tuple(str(q) for q in data.get("questions") or ()),
            metadata={str(k): str(v) for k, v in (data.get("metadata") or {}).items()},
            aliases=tuple(str(i) for i in (data.get("ids") or [data["id"]])[1:]),
        )


def merge_duplicate_answers(entries: Iterable[FaqEntry]) -> list[FaqEntry]:
    """One entry per distinct answer text (whitespace-normalised), holding every question and id of its rows.

    An FAQ exported with one row per question variant repeats its answer under
    several ids; left apart, the same answer would fill several places of the
    top k. The merged entry keeps the first row's id, answer text and metadata,
    its questions in order without repeats, and the other rows' ids as
    ``aliases``. Example: rows ``(a, "Q1", "Reset it.")``, ``(b, "Q2", "Reset  it.")``
    -> one entry ``a`` with questions ``("Q1", "Q2")`` and aliases ``("b",)``.
    """
    groups: dict[str, list[FaqEntry]] = {}
    for entry in entries:
        groups.setdefault(" ".join(entry.answer.split()), []).append(entry)
    merged = []
    for group in groups.values():
        first = group[0]
        if len(group) == 1:
            merged.append(first)
            continue
        questions = tuple(dict.fromkeys(q for entry in group for q in entry.questions))
        aliases = tuple(dict.fromkeys(i for entry in group for i in entry.ids))[1:]
        merged.append(FaqEntry(first.id, first.answer, questions, first.metadata, aliases))
    return merged


def detect_format(path: Path) -> str:
    """The format name for ``path`` from its suffix, or an InputError naming the choices."""
    fmt = FORMATS.get(path.suffix.lower())
    if fmt is None:
        known = ", ".join(sorted(FORMATS))
        raise InputError(
            f"{path}: unknown FAQ file format {path.suffix or '(no suffix)'!r}; "
            f"use one of {known}, or pass the format explicitly (--format)"
        )
    return fmt


def read_faq(
    path: str | Path,
    *,
    answer_column: str = _DEFAULT_ANSWER,
    question_column: str | Sequence[str] | None = None,
    id_column: str | None = None,
    file_format: str | None = None,
    keep_duplicate_answers: bool = False,
) -> list[FaqEntry]:
    """Read and validate an FAQ file (CSV, TSV, JSON, JSONL, Parquet or Excel).

    ``question_column`` and ``id_column`` default to ``question`` and ``id``
    when such columns exist; named explicitly, they must exist. Several
    question columns may be given; each non-empty cell is a paraphrase. Rows
    with the same answer text become one entry (:func:`merge_duplicate_answers`)
    unless ``keep_duplicate_answers``.
    """
    path = Path(path)
    frame = read_table(path, file_format)
    entries = entries_from_frame(
        frame,
        source=path.name,
        answer_column=answer_column,
        question_column=question_column,
        id_column=id_column,
        row_offset=1 if (file_format or detect_format(path)) in ("json", "jsonl") else 2,
    )
    return entries if keep_duplicate_answers else merge_duplicate_answers(entries)


def read_table(path: Path, file_format: str | None = None) -> pd.DataFrame:
    """Read any supported table file into a DataFrame of raw cells."""
    import pandas as pd

    if not path.exists():
        raise InputError(f"{path}: file not found; check the path")
    if path.is_dir():
        raise InputError(f"{path}: is a directory; pass an FAQ file")
    fmt = file_format or detect_format(path)
    if fmt not in set(FORMATS.values()):
        raise InputError(f"unknown format {fmt!r}; use one of {', '.join(sorted(set(FORMATS.values())))}")
    if path.stat().st_size == 0 or (fmt in ("csv", "tsv", "json", "jsonl") and not path.read_bytes().strip()):
        raise InputError(f"{path}: the file is empty; an FAQ needs a header row and at least one answer")
    try:
        if fmt in ("csv", "tsv"):
            options: dict[str, Any] = {
                "sep": "\t" if fmt == "tsv" else ",",
                "dtype": str,
                "keep_default_na": False,
                "encoding": "utf-8-sig",
            }
            frame = pd.read_csv(path, **options)
            every = pd.read_csv(path, skip_blank_lines=False, **options)
            frame = frame if len(every) == len(frame) else _renumber(frame, every)
            if len(frame.columns) > 1:  # rows of bare separators (",,,", as spreadsheets export) are blank too
                frame = frame[~(frame == "").all(axis=1)]
            return frame
        if fmt == "json":
            return pd.read_json(path, orient="records", dtype=False, encoding="utf-8")
        if fmt == "jsonl":
            return pd.read_json(path, lines=True, dtype=False, encoding="utf-8")
        if fmt == "parquet":
            return pd.read_parquet(path)
        return pd.read_excel(path, dtype=str, keep_default_na=False)
    except UnicodeDecodeError as exc:
        raise InputError(f"{path}: byte {exc.start} is not valid UTF-8; re-save the file with UTF-8 encoding") from None
    except pd.errors.EmptyDataError:
        raise InputError(f"{path}: the file is empty; an FAQ needs a header row and at least one answer") from None
    except ImportError as exc:
        raise InputError(f"{path}: reading {fmt} needs an extra package ({exc.name}); pip install it") from None
    except (ValueError, OSError, KeyError, IndexError, EOFError, RecursionError, zipfile.BadZipFile) as exc:
        # a damaged or mislabelled file: readers (openpyxl, pyarrow, json) fail in their own ways
        first_line = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise InputError(f"{path}: cannot be read as {fmt} ({first_line}); check the file's format") from None


def _renumber(frame: pd.DataFrame, every: pd.DataFrame) -> pd.DataFrame:
    """Index ``frame`` (blank lines skipped) by record position in ``every`` (blank lines kept).

    Row numbers in messages then match what a spreadsheet shows for the file. (A
    one-column file's empty cell next to a blank line may be numbered as that line.)
    """
    kept = [tuple(row) for row in frame.itertuples(index=False)]
    positions: list[int] = []
    for position, row in enumerate(every.itertuples(index=False)):
        if len(positions) < len(kept) and tuple(row) == kept[len(positions)]:
            positions.append(position)
    if len(positions) != len(kept):
        return frame
    return frame.set_axis(positions, axis="index")


def entries_from_frame(
    frame: pd.DataFrame,
    *,
    source: str = "table",
    answer_column: str = _DEFAULT_ANSWER,
    question_column: str | Sequence[str] | None = None,
    id_column: str | None = None,
    row_offset: int = 2,
) -> list[FaqEntry]:
    """Validate a DataFrame and turn its rows into entries.

    ``row_offset`` converts a 0-based row index into the number a user sees:
    2 for spreadsheet-like files (the header is row 1), 1 for JSON records.
    """
    if len(frame) == 0 and len(frame.columns) == 0:
        raise InputError(f"{source}: has no records; an FAQ needs at least one answer")
    columns = [str(c) for c in frame.columns]
    frame = frame.set_axis(columns, axis="columns")
    answer_col = _require_column(columns, answer_column, "answer", source)
    question_cols = _question_columns(columns, question_column, source)
    id_col = _optional_column(columns, id_column, _DEFAULT_ID, "id", source)
    if len(frame) == 0:
        raise InputError(f"{source}: has no rows; an FAQ needs at least one answer")

    used = {answer_col, id_col, *question_cols}
    meta_cols = [c for c in columns if c not in used]
    positions = [int(i) if isinstance(i, (int, np.integer)) else n for n, i in enumerate(frame.index)]
    answers = [_text(v) for v in frame[answer_col].tolist()]
    empty = [positions[i] + row_offset for i, a in enumerate(answers) if not a]
    if empty:
        raise InputError(f"{source}: empty answer in {_rows(empty, row_offset)}; fill them in or remove those rows")

    questions = [_questions(frame, question_cols, i) for i in range(len(frame))]
    if id_col is not None:
        ids = [_text(v) for v in frame[id_col].tolist()]
        missing = [positions[i] + row_offset for i, v in enumerate(ids) if not v]
        if missing:
            raise InputError(
                f"{source}: empty id in {_rows(missing, row_offset)}; give every row an id "
                "or drop the id column to derive ids from the text"
            )
    else:
        ids = derive_ids(answers, questions)
    _check_unique(ids, source)

    meta_values = {c: frame[c].tolist() for c in meta_cols}
    return [
        FaqEntry(
            id=ids[i],
            answer=answers[i],
            questions=questions[i],
            metadata={c: t for c in meta_cols if (t := _text(meta_values[c][i]))},
        )
        for i in range(len(frame))
    ]


def derive_ids(answers: Sequence[str], questions: Sequence[tuple[str, ...]]) -> list[str]:
    """Stable ids from the text: the same FAQ gives the same ids on every run.

    Identical rows get ``-2``, ``-3`` ... suffixes in file order.
    """
    ids: list[str] = []
    seen: dict[str, int] = {}
    for answer, qs in zip(answers, questions, strict=True):
        digest = hashlib.sha256("\x1f".join((*qs, answer)).encode("utf-8")).hexdigest()[:12]
        base = f"faq-{digest}"
        seen[base] = seen.get(base, 0) + 1
        ids.append(base if seen[base] == 1 else f"{base}-{seen[base]}")
    return ids


def _check_unique(ids: Iterable[str], source: str) -> None:
    counts: dict[str, int] = {}
    for entry_id in ids:
        counts[entry_id] = counts.get(entry_id, 0) + 1
    dupes = [i for i, n in counts.items() if n > 1]
    if dupes:
        shown = ", ".join(repr(d) for d in dupes[:5]) + (" ..." if len(dupes) > 5 else "")
        raise InputError(f"{source}: duplicate ids {shown}; every entry needs its own id")


def _rows(numbers: list[int], row_offset: int) -> str:
    word = "record" if row_offset == 1 else "row"
    shown = ", ".join(str(n) for n in numbers[:10]) + (f" and {len(numbers) - 10} more" if len(numbers) > 10 else "")
    return f"{word}{'s' if len(numbers) > 1 else ''} {shown}"


def _find(columns: list[str], name: str) -> str | None:
    if name in columns:
        return name
    folded = [c for c in columns if c.strip().lower() == name.strip().lower()]
    return folded[0] if len(folded) == 1 else None


def _require_column(columns: list[str], name: str, role: str, source: str) -> str:
    found = _find(columns, name)
    if found is None:
        raise InputError(
            f"{source}: no {role} column {name!r}; the columns are {', '.join(map(repr, columns))}; "
            f"choose one with --{role}-column"
        )
    return found


def _optional_column(columns: list[str], explicit: str | None, default: str, role: str, source: str) -> str | None:
    if explicit is not None:
        return _require_column(columns, explicit, role, source)
    return _find(columns, default)


def _question_columns(columns: list[str], explicit: str | Sequence[str] | None, source: str) -> list[str]:
    if explicit is None:
        found = _find(columns, _DEFAULT_QUESTION)
        return [found] if found else []
    names = [explicit] if isinstance(explicit, str) else list(explicit)
    return [_require_column(columns, n, "question", source) for n in names]


def _questions(frame: pd.DataFrame, question_cols: list[str], row: int) -> tuple[str, ...]:
    out: list[str] = []
    for col in question_cols:
        value: Any = frame[col].iat[row]
        cells = list(value) if isinstance(value, (list, tuple)) or _is_array(value) else [value]
        for cell in cells:
            text = _text(cell)
            if text and text not in out:
                out.append(text)
    return tuple(out)


def _is_array(value: object) -> bool:
    return type(value).__name__ == "ndarray"


def _text(value: object) -> str:
    """A cell as stripped text; missing values (None, NaN) become ''."""
    if value is None:
        return ""
    if isinstance(value, float) and math.isnan(value):
        return ""
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    return str(value).strip()
