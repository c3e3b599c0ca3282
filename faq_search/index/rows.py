"""Which texts of an FAQ become vectors, and the key each vector is known by.

Every entry's answer is a row; so is each of its questions when the index
embeds questions too; a text longer than :data:`WINDOW_TOKENS` becomes several
rows, one per window. A row's vector is a function of its text and the encoder,
so :func:`text_digest` of the text is the key that lets an update reuse it.
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence

from faq_search.corpus import FaqEntry
from faq_search.encoding.protocol import TextWindows
from faq_search.encoding.settings import Fields
from faq_search.errors import InputError

QUESTION = "question"
ANSWER = "answer"

WINDOW_TOKENS = 128
"""Texts longer than this many word pieces (or the encoder's window) are embedded as overlapping windows.

Measured on the shared sets, windows of 64, 128 and 256 word pieces rank within 0.01 MRR@10 of each
other; 128 keeps one passage's worth of text per vector, so a fact deep in a long answer stays visible.
"""


def embedding_rows(
    entries: Sequence[FaqEntry], fields: Fields, windows: TextWindows | None = None
) -> tuple[list[str], list[int], list[str]]:
    """The texts to embed and, per text, its entry position and field.

    Each question (when fields include questions) and the answer is a row; with
    ``windows`` (the encoder's long-text capability), a text longer than
    :data:`WINDOW_TOKENS` becomes several rows, one per window.
    """
    parts: list[tuple[int, str, str]] = []
    for position, entry in enumerate(entries):
        named = [(QUESTION, q) for q in entry.questions] if fields is Fields.QUESTION_ANSWER else []
        parts += [(position, name, text) for name, text in [*named, (ANSWER, entry.answer)]]
    plain = [text for _, _, text in parts]
    pieces_of = [[text] for text in plain] if windows is None else windows.split(plain, WINDOW_TOKENS)
    texts: list[str] = []
    row_entry: list[int] = []
    row_field: list[str] = []
    for (position, name, _), pieces in zip(parts, pieces_of, strict=True):
        for window in pieces:
            texts.append(window)
            row_entry.append(position)
            row_field.append(name)
    return texts, row_entry, row_field


def text_digest(text: str) -> str:
    """The key of a text's vector: the first 128 bits of its SHA-256, in hex."""
    return hashlib.sha256(text.encode("utf-8")).hexdigest()[:32]


def check_entries(entries: Sequence[FaqEntry]) -> None:
    """Every text of every entry must be encodable as UTF-8 (no lone surrogates from a broken file)."""
    for entry in entries:
        if not isinstance(entry, FaqEntry):
            raise InputError(f"an FAQ entry must be an FaqEntry, not {type(entry).__name__}; use read_faq()")
        named = [("id", entry.id), ("answer", entry.answer), *(("question", q) for q in entry.questions)]
        named += [(f"metadata {k!r}", f"{k}{v}") for k, v in entry.metadata.items()]
        for what, text in named:
            if not isinstance(text, str):
                raise InputError(f"entry {entry.id!r}: its {what} is not text; give it as a string")
            if not is_text(text):
                raise InputError(
                    f"entry {entry.id!r}: its {what} holds characters that are not valid text "
                    "(a lone surrogate, from a badly encoded file); re-save the file as UTF-8"
                )


def is_text(text: str) -> bool:
    """True when ``text`` encodes as UTF-8 (holds no lone surrogate)."""
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True
