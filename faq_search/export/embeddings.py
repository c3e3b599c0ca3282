"""Embeddings as a product: sentence, token and word vectors from the encoder.

What people used bert-as-service and the BERT token-level embedding scripts
for, on the same :class:`~faq_search.encoding.encoder.BertEncoder` (and so the same
model, layer choice and precision) that indexes an FAQ:

- sentence level: :func:`sentence_embeddings`, one unit-length vector per text,
  pooled as the encoder's settings say (mean, max, mean_max, cls, last; one
  layer, or several concatenated or summed). Texts longer than the window are
  cut at ``max_seq_len`` and flagged.
- token level: :func:`token_embeddings`, one vector per word piece with its
  token string and character offsets. [CLS]/[SEP] are returned when asked for
  (bert-as-service's ``pooling_strategy=NONE`` with ``show_tokens_to_client``);
  padding never is.
- word level: :func:`word_embeddings`, one vector per word of the tokenizer's
  pre-tokenizer (whitespace and punctuation split, as BERT's), its word pieces
  merged by the first, last or mean piece.

Token and word vectors are the raw hidden states (several layers concatenated
or summed per token): they are **not** normalised. Long texts run in
overlapping windows at token and word level, so every piece gets a vector from
the window where it has the most context on both sides; with ``windows=False``
the text is cut at a word boundary instead and the dropped words are reported.

What this module is not: a second encoder. It only calls the encoder's public
``tokenizer``, ``tokenize``, ``hidden_states`` and ``encode``.
"""

from __future__ import annotations

import bisect
import enum
import json
import os
import sys
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, TextIO

from faq_search.encoding.settings import Pooling, choice
from faq_search.errors import InputError

if TYPE_CHECKING:
    import numpy as np

    from faq_search.encoding.encoder import BertEncoder


class Level(str, enum.Enum):
    """What one vector stands for."""

    SENTENCE = "sentence"  # one pooled, unit-length vector per text
    TOKEN = "token"  # one vector per word piece
    WORD = "word"  # one vector per whitespace/punctuation word, its pieces merged


class WordMerge(str, enum.Enum):
    """How the word pieces of one word become the word's vector."""

    FIRST = "first"  # the first piece (BERT's own choice for tagging)
    LAST = "last"  # the last piece
    MEAN = "mean"  # the average of the pieces


def _first(pieces: np.ndarray) -> np.ndarray:
    return pieces[0].copy()


def _last(pieces: np.ndarray) -> np.ndarray:
    return pieces[-1].copy()


def _mean(pieces: np.ndarray) -> np.ndarray:
    return pieces.mean(axis=0, dtype=pieces.dtype)


MERGERS: dict[WordMerge, Callable[[np.ndarray], np.ndarray]] = {
    WordMerge.FIRST: _first,
    WordMerge.LAST: _last,
    WordMerge.MEAN: _mean,
}
"""One pure function per merge: ``[pieces, width] -> [width]``."""

OUTPUT_FORMATS = (".npy", ".jsonl", ".parquet")


# ---------------------------------------------------------------------------
# records


@dataclass(frozen=True, eq=False)
class SentenceEmbedding:
    """One text's sentence vector (unit length) and the word pieces the model saw."""

    text: str
    vector: np.ndarray  # float32 [dimension], unit length
    tokens: tuple[str, ...]  # the pieces pooled over, [CLS]/[SEP] included, after truncation
    truncated: bool  # the text was longer than max_seq_len and its end was not seen

    def to_dict(self) -> dict[str, Any]:
        return {
            "text": self.text,
            "tokens": list(self.tokens),
            "truncated": self.truncated,
            "vector": self.vector.tolist(),
        }


@dataclass(frozen=True, eq=False)
class TokenEmbedding:
    """One vector per word piece of a text, in text order.

    ``offsets[i]`` is the character span ``text[start:end]`` of piece ``i``
    ((0, 0) for [CLS]/[SEP]); ``word_index[i]`` is the word the piece belongs
    to (None for [CLS]/[SEP]), the same numbering :class:`WordEmbedding` uses.
    """

    text: str
    tokens: tuple[str, ...]
    offsets: tuple[tuple[int, int], ...]
    word_index: tuple[int | None, ...]
    vectors: np.ndarray  # float32 [len(tokens), width], not normalised
    windows: int  # how many model windows the text ran in (1 unless it is long)
    dropped_tokens: int  # pieces past the window that got no vector (only with windows=False)
    truncated_at: int | None  # character where the unembedded rest starts, or None

    @property
    def truncated(self) -> bool:
        return self.dropped_tokens > 0

    def to_dict(self) -> dict[str, Any]:
        return {
            "text": self.text,
            "tokens": list(self.tokens),
            "offsets": [list(span) for span in self.offsets],
            "word_index": list(self.word_index),
            "windows": self.windows,
            "dropped_tokens": self.dropped_tokens,
            "truncated_at": self.truncated_at,
            "vectors": self.vectors.tolist(),
        }


@dataclass(frozen=True, eq=False)
class WordEmbedding:
    """One vector per word of a text, in text order.

    ``text[start:end]`` for ``offsets[i]`` is exactly ``words[i]``;
    ``pieces[i]`` are the word pieces merged into ``vectors[i]``. Words past
    the window (only with ``windows=False``) are listed in ``dropped_words``.
    """

    text: str
    words: tuple[str, ...]
    offsets: tuple[tuple[int, int], ...]
    pieces: tuple[tuple[str, ...], ...]
    vectors: np.ndarray  # float32 [len(words), width], not normalised
    merge: WordMerge
    windows: int
    dropped_words: tuple[str, ...]
    truncated_at: int | None

    @property
    def truncated(self) -> bool:
        return bool(self.dropped_words)

    def to_dict(self) -> dict[str, Any]:
        return {
            "text": self.text,
            "words": list(self.words),
            "offsets": [list(span) for span in self.offsets],
            "pieces": [list(p) for p in self.pieces],
            "merge": self.merge.value,
            "windows": self.windows,
            "dropped_words": list(self.dropped_words),
            "truncated_at": self.truncated_at,
            "vectors": self.vectors.tolist(),
        }


Record = SentenceEmbedding | TokenEmbedding | WordEmbedding


@dataclass(frozen=True, eq=False)
class Embeddings:
    """The result of :func:`embed`: records of one level plus how they were made."""

    level: Level
    model_name: str
    layer: str
    pooling: Pooling | None  # sentence level only
    merge: WordMerge | None  # word level only
    dimension: int
    normalized: bool  # True for sentence vectors only
    max_seq_len: int
    records: tuple[Record, ...]

    @property
    def vector_count(self) -> int:
        return sum(1 if isinstance(r, SentenceEmbedding) else len(r.vectors) for r in self.records)

    @property
    def truncated_count(self) -> int:
        return sum(r.truncated for r in self.records)

    def truncation_warning(self) -> str | None:
        """One line saying how many texts were cut and what to do, or None when none was."""
        cut = self.truncated_count
        if not cut:
            return None
        total = len(self.records)
        if self.level is Level.SENTENCE:
            return (
                f"{cut} of {total} texts are longer than the {self.max_seq_len}-piece window and were cut; "
                "raise --max-seq-len (up to the model's window, 512 for BERT), or use --level token/word, "
                "which run long texts in windows"
            )
        lost = sum(
            r.dropped_tokens if isinstance(r, TokenEmbedding) else len(r.dropped_words)
            for r in self.records
            if not isinstance(r, SentenceEmbedding)
        )
        unit = "word pieces" if self.level is Level.TOKEN else "words"
        return (
            f"{cut} of {total} texts were cut at the {self.max_seq_len}-piece window ({lost} {unit} not embedded); "
            "drop --truncate to embed long texts whole in windows"
        )

    def metadata(self) -> dict[str, Any]:
        """Everything but the records, JSON-ready."""
        return {
            "level": self.level.value,
            "model": self.model_name,
            "layer": self.layer,
            "pooling": self.pooling.value if self.pooling else None,
            "merge": self.merge.value if self.merge else None,
            "dimension": self.dimension,
            "normalized": self.normalized,
            "max_seq_len": self.max_seq_len,
            "texts": len(self.records),
            "vectors": self.vector_count,
            "truncated_texts": self.truncated_count,
        }

    def to_dict(self) -> dict[str, Any]:
        return {**self.metadata(), "records": [r.to_dict() for r in self.records]}

    def matrix(self) -> np.ndarray:
        """Sentence level only: the vectors stacked as float32 ``[texts, dimension]``."""
        import numpy as np

        if self.level is not Level.SENTENCE:
            raise InputError(
                f"{self.level.value}-level texts have different numbers of vectors, so they do not stack "
                "into one [n, dim] array; use the records, or --level sentence"
            )
        return np.stack([r.vector for r in self.records if isinstance(r, SentenceEmbedding)])

    def save(self, path: str | Path) -> Path:
        """Write to ``.npy`` (sentence level), ``.jsonl`` or ``.parquet``, replacing the file atomically."""
        path = check_output(path, self.level)
        temp = path.with_name(f".{path.name}.tmp-{os.getpid()}")
        try:
            _WRITERS[path.suffix.lower()](self, temp)
            os.replace(temp, path)
        finally:
            temp.unlink(missing_ok=True)
        return path

    def summary(self, *, show_tokens: bool = False, values: int = 4) -> str:
        """A readable account: what was embedded and, per text, the first values (and tokens when asked)."""
        head = f"{self.model_name}, layer {self.layer}"
        if self.pooling is not None:
            head += f", {self.pooling.value} pooling"
        if self.merge is not None:
            head += f", words merged by {self.merge.value} piece"
        norm = "unit length" if self.normalized else "not normalised"
        lines = [f"{head}: {self.vector_count} {self.level.value} vectors of {self.dimension} dims ({norm})"]
        for number, record in enumerate(self.records, 1):
            lines.append(f"{number:>3}. {_clip(record.text, 90)}")
            lines += _record_lines(record, show_tokens, values)
        return "\n".join(lines)


def _clip(text: str, width: int) -> str:
    flat = " ".join(text.split())
    return flat if len(flat) <= width else flat[: width - 3] + "..."


def _count(number: int, noun: str) -> str:
    return f"{number} {noun}{'' if number == 1 else 's'}"


def _values(vector: np.ndarray, count: int) -> str:
    shown = " ".join(f"{v:+.4f}" for v in vector[:count].tolist())
    return f"[{shown}{' ...' if len(vector) > count else ''}]"


def _record_lines(record: Record, show_tokens: bool, values: int) -> list[str]:
    import numpy as np

    pad = "     "
    if isinstance(record, SentenceEmbedding):
        cut = ", truncated" if record.truncated else ""
        lines = [f"{pad}{_values(record.vector, values)}  ({len(record.tokens)} pieces{cut})"]
        if show_tokens:
            lines.append(f"{pad}tokens: {' '.join(record.tokens)}")
        return lines
    if isinstance(record, TokenEmbedding):
        labels, offsets = record.tokens, record.offsets
        info = f"{_count(len(labels), 'token')}, {_count(record.windows, 'window')}"
        if record.dropped_tokens:
            info += f", {record.dropped_tokens} pieces past the window not embedded"
    else:
        labels, offsets = record.words, record.offsets
        info = f"{_count(len(labels), 'word')}, {_count(record.windows, 'window')}"
        if record.dropped_words:
            info += f", {len(record.dropped_words)} words past the window not embedded"
    lines = [f"{pad}({info})"]
    if show_tokens:
        width = min(max((len(label) for label in labels), default=1), 24)
        for index, (label, (start, end)) in enumerate(zip(labels, offsets, strict=True)):
            vector = record.vectors[index]
            norm = float(np.linalg.norm(vector))
            lines.append(f"{pad}{label:<{width}}  {start:>4}:{end:<4}  |v|={norm:7.3f}  {_values(vector, values)}")
    if isinstance(record, WordEmbedding) and record.dropped_words:
        lines.append(f"{pad}not embedded: {_clip(' '.join(record.dropped_words), 80)}")
    return lines


# ---------------------------------------------------------------------------
# reading texts


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


# ---------------------------------------------------------------------------
# embedding


def embed(
    encoder: BertEncoder,
    texts: Sequence[str],
    level: Level | str = Level.SENTENCE,
    *,
    merge: WordMerge | str | None = None,
    windows: bool | None = None,
    special: bool | None = None,
    batch_size: int | None = None,
) -> Embeddings:
    """Embed ``texts`` at one level; the one entry point for the CLI and the server.

    ``merge`` (word level, default mean), ``windows`` (token and word level,
    default True) and ``special`` (token level: return [CLS]/[SEP]; default the
    encoder's ``include_special``) are refused where they do not apply.
    ``batch_size`` (windows per forward pass) defaults to the encoder's.
    """
    chosen = check_options(level, merge=merge, windows=windows)
    check_texts(texts)
    batch = batch_size or encoder.batch_size
    settings = encoder.settings
    records: tuple[Record, ...]
    pooling: Pooling | None = None
    word_merge: WordMerge | None = None
    if chosen is Level.SENTENCE:
        records = tuple(sentence_embeddings(encoder, texts))
        pooling = settings.pooling
        dimension = encoder.dimension
    elif chosen is Level.TOKEN:
        tokens = token_embeddings(encoder, texts, special=special, windows=windows is not False, batch_size=batch)
        records, dimension = tuple(tokens), tokens[0].vectors.shape[1]
    else:
        word_merge = choice(WordMerge, merge or WordMerge.MEAN, "word merge")
        words = word_embeddings(encoder, texts, merge=word_merge, windows=windows is not False, batch_size=batch)
        records, dimension = tuple(words), words[0].vectors.shape[1]
    return Embeddings(
        level=chosen,
        model_name=encoder.identity.model_name,
        layer=settings.layer,
        pooling=pooling,
        merge=word_merge,
        dimension=dimension,
        normalized=chosen is Level.SENTENCE,
        max_seq_len=settings.max_seq_len,
        records=records,
    )


def sentence_embeddings(encoder: BertEncoder, texts: Sequence[str]) -> list[SentenceEmbedding]:
    """One unit-length vector per text, exactly :meth:`BertEncoder.encode`'s, with its pieces and a cut flag."""
    check_texts(texts)
    vectors = encoder.encode(texts)
    vectors.flags.writeable = False
    ids, _ = encoder.tokenize(texts)
    with encoder.tokenizer_session() as tokenizer:
        whole = tokenizer(list(texts), truncation=False, return_attention_mask=False, return_token_type_ids=False)[
            "input_ids"
        ]
        tokens = [tuple(tokenizer.convert_ids_to_tokens(row)) for row in ids]
    return [
        SentenceEmbedding(text=text, vector=vectors[i], tokens=tokens[i], truncated=len(whole[i]) > len(ids[i]))
        for i, text in enumerate(texts)
    ]


def token_embeddings(
    encoder: BertEncoder,
    texts: Sequence[str],
    *,
    special: bool | None = None,
    windows: bool = True,
    batch_size: int = 32,
) -> list[TokenEmbedding]:
    """One vector per word piece (several layers concatenated or summed per piece), never for padding.

    ``special``: also return [CLS] (first) and [SEP] (last), as bert-as-service
    did; default the encoder's ``include_special``. With several windows the
    [CLS] vector comes from the first window and the [SEP] vector from the last.
    """
    check_texts(texts)
    keep_special = encoder.settings.include_special if special is None else special
    out: list[TokenEmbedding] = []
    for run in _run_texts(encoder, texts, windows, batch_size):
        owners = run.owners()
        kept = run.kept
        content = [run.vector_of(p, owners[p]) for p in range(kept)]
        tokens = list(run.tokens[:kept])
        offsets = list(run.offsets[:kept])
        word_index: list[int | None] = list(run.word_ids[:kept])
        if keep_special:
            first, last = run.spans[0], run.spans[-1]
            head = [run.window_vectors[first.window][i] for i in range(len(run.prefix))]
            tail_start = len(run.prefix) + last.end - last.start
            tail = [run.window_vectors[last.window][tail_start + i] for i in range(len(run.suffix))]
            content = head + content + tail
            tokens = list(run.prefix) + tokens + list(run.suffix)
            offsets = [(0, 0)] * len(run.prefix) + offsets + [(0, 0)] * len(run.suffix)
            word_index = [None] * len(run.prefix) + word_index + [None] * len(run.suffix)
        out.append(
            TokenEmbedding(
                text=run.text,
                tokens=tuple(tokens),
                offsets=tuple(offsets),
                word_index=tuple(word_index),
                vectors=_stack(content, run.width),
                windows=len(run.spans),
                dropped_tokens=len(run.tokens) - kept,
                truncated_at=run.truncated_at,
            )
        )
    return out


def word_embeddings(
    encoder: BertEncoder,
    texts: Sequence[str],
    *,
    merge: WordMerge | str = WordMerge.MEAN,
    windows: bool = True,
    batch_size: int = 32,
) -> list[WordEmbedding]:
    """One vector per word, merging its pieces' token-level vectors by ``merge``.

    Words are the tokenizer's pre-tokenizer words: BERT splits on whitespace and
    on every punctuation character (``don't`` is three words). A word's vector
    is built from the same piece vectors :func:`token_embeddings` returns.
    """
    check_texts(texts)
    merge = choice(WordMerge, merge, "word merge")
    merger = MERGERS[merge]
    out: list[WordEmbedding] = []
    for run in _run_texts(encoder, texts, windows, batch_size):
        owners = run.owners()
        words: list[str] = []
        offsets: list[tuple[int, int]] = []
        pieces: list[tuple[str, ...]] = []
        vectors = []
        dropped: list[str] = []
        truncated_at: int | None = None
        for start, end in run.word_spans():
            span = (run.offsets[start][0], run.offsets[end - 1][1])
            if end > run.kept:  # past the window (or cut by it): reported, never half-merged
                truncated_at = span[0] if truncated_at is None else truncated_at
                dropped.append(run.text[span[0] : span[1]])
                continue
            words.append(run.text[span[0] : span[1]])
            offsets.append(span)
            pieces.append(tuple(run.tokens[start:end]))
            vectors.append(merger(_stack([run.vector_of(p, owners[p]) for p in range(start, end)], run.width)))
        out.append(
            WordEmbedding(
                text=run.text,
                words=tuple(words),
                offsets=tuple(offsets),
                pieces=tuple(pieces),
                vectors=_stack(vectors, run.width),
                merge=merge,
                windows=len(run.spans),
                dropped_words=tuple(dropped),
                truncated_at=truncated_at,
            )
        )
    return out


# ---------------------------------------------------------------------------
# windows: the machinery behind token and word level


@dataclass(frozen=True)
class _Span:
    """Content pieces ``[start, end)`` of one text, run as model window ``window``."""

    window: int
    start: int
    end: int


@dataclass(frozen=True)
class _Run:
    """One text tokenized whole, cut into windows, and the vectors of every window."""

    text: str
    tokens: list[str]  # content pieces, no specials
    offsets: list[tuple[int, int]]
    word_ids: list[int | None]
    prefix: list[str]  # special pieces before the content ([CLS])
    suffix: list[str]  # special pieces after the content ([SEP])
    spans: list[_Span]
    window_vectors: dict[int, np.ndarray]  # window -> float32 [pieces incl. specials, width]
    width: int

    @property
    def kept(self) -> int:
        """Content pieces that get a vector: all of them unless truncated."""
        return self.spans[-1].end

    @property
    def truncated_at(self) -> int | None:
        return self.offsets[self.kept][0] if self.kept < len(self.tokens) else None

    def word_spans(self) -> list[tuple[int, int]]:
        """Piece ranges ``[start, end)`` of each word, in order."""
        starts = _word_starts(self.word_ids)
        return list(zip(starts, [*starts[1:], len(self.tokens)], strict=True))

    def owners(self) -> list[_Span]:
        """For each kept piece, the window it takes its vector from: where its word has most context.

        All pieces of a word come from one window when a window holds the whole
        word (windows are cut at word starts, so that is the rule); only a word
        longer than a window is split, each piece then taking its own best window.
        """
        starts = [s.start for s in self.spans]  # both increase: spans are in text order
        ends = [s.end for s in self.spans]

        def best(first: int, last: int) -> _Span | None:
            """The span holding pieces [first, last) with the most context on its poorer side."""
            holding = self.spans[bisect.bisect_left(ends, last) : bisect.bisect_right(starts, first)]
            return max(holding, key=lambda s: min(first - s.start, s.end - last), default=None)

        owners: list[_Span] = []
        for start, end in self.word_spans():
            if start >= self.kept:
                break
            whole = best(start, end)
            if whole is not None:
                owners += [whole] * (end - start)
                continue
            for piece in range(start, min(end, self.kept)):
                owners.append(best(piece, piece + 1) or self.spans[-1])
        return owners

    def vector_of(self, piece: int, span: _Span) -> np.ndarray:
        return self.window_vectors[span.window][len(self.prefix) + piece - span.start]


def _word_starts(word_ids: Sequence[int | None]) -> list[int]:
    return [i for i, word in enumerate(word_ids) if i == 0 or word is None or word != word_ids[i - 1]]


def _plan_spans(word_ids: Sequence[int | None], budget: int, windows: bool) -> list[tuple[int, int]]:
    """Content ranges of the windows: cut at word starts, each next window starting about half-way in."""
    count = len(word_ids)
    if count <= budget:
        return [(0, count)]
    starts = _word_starts(word_ids)
    step = max(1, budget // 2)
    spans: list[tuple[int, int]] = []
    start = 0
    while True:
        end = start + budget
        if end >= count:
            spans.append((start, count))
            return spans
        cut = starts[bisect.bisect_right(starts, end) - 1]  # the last word start at or before the end
        end = cut if cut > start else end
        spans.append((start, end))
        if not windows:
            return spans
        turn = starts[bisect.bisect_right(starts, start + step) - 1]
        start = turn if turn > start else end


def _run_texts(encoder: BertEncoder, texts: Sequence[str], windows: bool, batch_size: int) -> list[_Run]:
    """Tokenize each text whole, cut it into windows, and run every window through the encoder."""
    if batch_size < 1:
        raise InputError(f"batch size {batch_size} must be at least 1")
    with encoder.tokenizer_session() as tokenizer:
        encoded = tokenizer(
            list(texts),
            truncation=False,
            return_offsets_mapping=True,
            return_special_tokens_mask=True,
            return_attention_mask=False,
            return_token_type_ids=False,
        )
        pieces: list[list[str]] = [list(tokenizer.convert_ids_to_tokens(row)) for row in encoded["input_ids"]]
    plans = []
    window_ids: list[list[int]] = []
    for i in range(len(texts)):
        ids = list(encoded["input_ids"][i])
        special = list(encoded["special_tokens_mask"][i])
        content = [p for p, flag in enumerate(special) if not flag]
        # Everything between the first and last ordinary piece is content; with no
        # ordinary piece at all (a text of characters the normaliser drops), the
        # specials split evenly: [CLS] | [SEP].
        first, last = (content[0], content[-1] + 1) if content else (len(ids) // 2, len(ids) // 2)
        word_ids = encoded.word_ids(i)[first:last]
        prefix_ids, body_ids, suffix_ids = ids[:first], ids[first:last], ids[last:]
        budget = encoder.settings.max_seq_len - len(prefix_ids) - len(suffix_ids)
        spans = []
        for start, end in _plan_spans(word_ids, budget, windows):
            spans.append(_Span(len(window_ids), start, end))
            window_ids.append(prefix_ids + body_ids[start:end] + suffix_ids)
        plans.append((first, last, word_ids, spans))
    vectors = _window_vectors(encoder, window_ids, batch_size)
    width = next(iter(vectors.values())).shape[1]
    return [
        _Run(
            text=text,
            tokens=pieces[i][first:last],
            offsets=[(int(a), int(b)) for a, b in encoded["offset_mapping"][i][first:last]],
            word_ids=word_ids,
            prefix=pieces[i][:first],
            suffix=pieces[i][last:],
            spans=spans,
            window_vectors=vectors,
            width=width,
        )
        for i, (text, (first, last, word_ids, spans)) in enumerate(zip(texts, plans, strict=True))
    ]


def _window_vectors(encoder: BertEncoder, window_ids: list[list[int]], batch_size: int) -> dict[int, np.ndarray]:
    """Per window, float32 ``[pieces, width]``: the chosen layers concatenated or summed per piece."""
    import torch

    out: dict[int, np.ndarray] = {}
    order = sorted(range(len(window_ids)), key=lambda i: -len(window_ids[i]))
    for first in range(0, len(order), batch_size):
        batch = order[first : first + batch_size]
        states, _ = encoder.hidden_states([window_ids[i] for i in batch])
        with torch.inference_mode():
            layers = [states[index].float() for index in encoder.layer_indices]
            if encoder.combine == "sum" and len(layers) > 1:
                combined = torch.stack(layers).sum(dim=0)
            else:
                combined = torch.cat(layers, dim=-1)
        for row, window in enumerate(batch):
            out[window] = combined[row, : len(window_ids[window])].numpy().copy()
    return out


def _stack(vectors: Sequence[np.ndarray], width: int) -> np.ndarray:
    import numpy as np

    array = np.stack(vectors).astype(np.float32, copy=False) if vectors else np.zeros((0, width), np.float32)
    array.flags.writeable = False
    return array


# ---------------------------------------------------------------------------
# writers


def _write_npy(result: Embeddings, path: Path) -> None:
    import numpy as np

    with path.open("wb") as handle:
        np.save(handle, result.matrix())


def _write_jsonl(result: Embeddings, path: Path) -> None:
    with path.open("w", encoding="utf-8") as handle:
        for record in result.records:
            handle.write(json.dumps(record.to_dict(), ensure_ascii=False) + "\n")


def _write_parquet(result: Embeddings, path: Path) -> None:
    """One row per text; vectors as (lists of) fixed-size float32 lists; the metadata in the schema."""
    import numpy as np
    import pyarrow as pa
    import pyarrow.parquet as pq

    def fixed(matrix: np.ndarray, width: int) -> pa.Array:
        flat = pa.array(np.ascontiguousarray(matrix, dtype=np.float32).reshape(-1))
        return pa.FixedSizeListArray.from_arrays(flat, width)

    def nested(matrices: list[np.ndarray], width: int) -> pa.Array:
        counts = np.cumsum([0] + [len(m) for m in matrices]).astype(np.int32)
        inner = fixed(np.concatenate(matrices) if matrices else np.zeros((0, width), np.float32), width)
        return pa.ListArray.from_arrays(pa.array(counts), inner)

    spans = pa.list_(pa.list_(pa.int32(), 2))
    records = result.records
    columns: dict[str, pa.Array]
    if result.level is Level.SENTENCE:
        sentences = [r for r in records if isinstance(r, SentenceEmbedding)]
        columns = {
            "text": pa.array([r.text for r in sentences], pa.string()),
            "tokens": pa.array([list(r.tokens) for r in sentences], pa.list_(pa.string())),
            "truncated": pa.array([r.truncated for r in sentences], pa.bool_()),
            "vector": fixed(result.matrix(), result.dimension),
        }
    elif result.level is Level.TOKEN:
        tokens = [r for r in records if isinstance(r, TokenEmbedding)]
        columns = {
            "text": pa.array([r.text for r in tokens], pa.string()),
            "tokens": pa.array([list(r.tokens) for r in tokens], pa.list_(pa.string())),
            "offsets": pa.array([[list(s) for s in r.offsets] for r in tokens], spans),
            "word_index": pa.array([list(r.word_index) for r in tokens], pa.list_(pa.int32())),
            "windows": pa.array([r.windows for r in tokens], pa.int32()),
            "dropped_tokens": pa.array([r.dropped_tokens for r in tokens], pa.int32()),
            "truncated_at": pa.array([r.truncated_at for r in tokens], pa.int64()),
            "vectors": nested([r.vectors for r in tokens], result.dimension),
        }
    else:
        words = [r for r in records if isinstance(r, WordEmbedding)]
        columns = {
            "text": pa.array([r.text for r in words], pa.string()),
            "words": pa.array([list(r.words) for r in words], pa.list_(pa.string())),
            "offsets": pa.array([[list(s) for s in r.offsets] for r in words], spans),
            "pieces": pa.array([[list(p) for p in r.pieces] for r in words], pa.list_(pa.list_(pa.string()))),
            "windows": pa.array([r.windows for r in words], pa.int32()),
            "dropped_words": pa.array([list(r.dropped_words) for r in words], pa.list_(pa.string())),
            "truncated_at": pa.array([r.truncated_at for r in words], pa.int64()),
            "vectors": nested([r.vectors for r in words], result.dimension),
        }
    table = pa.table(columns).replace_schema_metadata({"faq_search": json.dumps(result.metadata())})
    pq.write_table(table, path)


_WRITERS: dict[str, Callable[[Embeddings, Path], None]] = {
    ".npy": _write_npy,
    ".jsonl": _write_jsonl,
    ".parquet": _write_parquet,
}
