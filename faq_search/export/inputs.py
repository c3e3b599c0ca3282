"""What to embed and how, checked before any model loads: the texts, the options, the output file.

Every refusal is an :class:`~faq_search.errors.InputError` of one line that
names the fix, raised before the encoder is built, so a wrong option never
costs a model load. Texts come as arguments, from stdin, or from a column of
any table the FAQ reader knows.
"""

from __future__ import annotations

import sys
from collections.abc import Sequence
from pathlib import Path
from typing import TextIO

from faq_search.encoding.settings import Pooling, choice
from faq_search.errors import InputError
from faq_search.export.records import Level, WordMerge

OUTPUT_FORMATS = (".npy", ".jsonl", ".parquet")
"""The file suffixes :func:`faq_search.export.writers.save` can write."""


def read_texts(
    texts: Sequence[str] = (),
    *,
    file: str | Path | None = None,
    column: str | None = None,
    stdin: TextIO | None = None,
) -> list[str]:
    """The texts to embed: given directly, ``-`` for one per line of ``stdin``, or a column of a file.

    A ``.txt`` file holds one text per line (blank lines skipped); any table
    the FAQ reader knows (CSV, TSV, JSON, JSONL, Parquet, Excel) gives the
    ``column`` (default ``text``, or the table's only column). Empty input is
    an error, as is an empty cell: the output rows must line up with the input.
    """
    if file is not None and texts:
        raise InputError("pass texts as arguments or with --file, not both")
    if column is not None and file is None:
        raise InputError("--column needs --file FILE; it names the column holding the texts")
    items: list[str]
    if file is not None:
        items = _read_file(Path(file), column)
    elif list(texts) == ["-"]:
        stream = stdin if stdin is not None else sys.stdin
        items = [line.rstrip("\r\n") for line in stream if line.strip()]
    else:
        items = list(texts)
    check_texts(items)
    return items


def _read_file(path: Path, column: str | None) -> list[str]:
    from faq_search.corpus import read_table

    if path.suffix.lower() == ".txt":
        if not path.is_file():
            raise InputError(f"{path}: file not found; check the path")
        try:
            lines = path.read_text(encoding="utf-8-sig").splitlines()
        except UnicodeDecodeError as exc:
            raise InputError(f"{path}: byte {exc.start} is not valid UTF-8; re-save the file as UTF-8") from None
        if column is not None:
            raise InputError(f"{path}: a .txt file has one text per line and no columns; drop --column")
        return [line for line in lines if line.strip()]
    frame = read_table(path)
    columns = [str(c) for c in frame.columns]
    if column is None:
        if len(columns) == 1:
            column = columns[0]
        elif "text" in columns:
            column = "text"
        else:
            raise InputError(
                f"{path}: which column holds the texts? the columns are {', '.join(map(repr, columns))}; "
                "choose one with --column"
            )
    if column not in columns:
        raise InputError(
            f"{path}: no column {column!r}; the columns are {', '.join(map(repr, columns))}; choose one with --column"
        )
    import pandas as pd

    cells = frame[frame.columns[columns.index(column)]].tolist()
    texts = ["" if pd.isna(cell) else str(cell) for cell in cells]
    empty = [i for i, text in enumerate(texts) if not text.strip()]
    if empty:
        shown = ", ".join(str(i + 1) for i in empty[:10]) + (" ..." if len(empty) > 10 else "")
        raise InputError(f"{path}: column {column!r} is empty in data row {shown}; fill those cells or remove the rows")
    return texts


def check_texts(texts: Sequence[str]) -> None:
    """Refuse no texts and empty texts (one line naming the fix)."""
    if isinstance(texts, str):
        raise InputError("texts must be a list of strings, not one string; wrap it in a list")
    if not texts:
        raise InputError("no text to embed; pass TEXT arguments, --file FILE (with --column), or '-' to read stdin")
    empty = [i + 1 for i, text in enumerate(texts) if not str(text).strip()]
    if empty:
        shown = ", ".join(map(str, empty[:10])) + (" ..." if len(empty) > 10 else "")
        raise InputError(f"text {shown} is empty; every text needs at least one word")


def check_options(
    level: Level | str,
    *,
    merge: WordMerge | str | None = None,
    windows: bool | None = None,
    pooling: Pooling | str | None = None,
) -> Level:
    """The level as a :class:`Level`, after refusing options that do not apply to it."""
    chosen = choice(Level, level, "level")
    if merge is not None:
        choice(WordMerge, merge, "word merge")
        if chosen is not Level.WORD:
            raise InputError(f"--merge applies to --level word only, not {chosen.value}; drop it")
    if pooling is not None:
        choice(Pooling, pooling, "pooling")
        if chosen is not Level.SENTENCE:
            raise InputError(
                f"--pooling applies to --level sentence only; {chosen.value} level returns one vector per "
                f"{chosen.value} (drop --pooling{', use --merge for words' if chosen is Level.WORD else ''})"
            )
    if windows is not None and chosen is Level.SENTENCE:
        raise InputError(
            "--windows/--truncate apply to --level token and word; sentence level always cuts at --max-seq-len"
        )
    return chosen


def check_output(path: str | Path, level: Level | str) -> Path:
    """Refuse an output file this level cannot be written to, before any work is done."""
    path = Path(path)
    chosen = choice(Level, level, "level")
    suffix = path.suffix.lower()
    if suffix not in OUTPUT_FORMATS:
        raise InputError(
            f"{path}: unknown output format {path.suffix or '(no suffix)'!r}; use .npy (sentence level), "
            ".jsonl or .parquet"
        )
    if suffix == ".npy" and chosen is not Level.SENTENCE:
        raise InputError(
            f"{path}: .npy holds one [n, dim] array, but {chosen.value}-level texts have different "
            "numbers of vectors; write .jsonl or .parquet instead"
        )
    if not path.parent.is_dir():
        raise InputError(f"{path}: directory {str(path.parent)!r} does not exist; create it first")
    return path
