"""Windows over word pieces for token and word vectors: cut at word starts, half overlap, max context."""

from __future__ import annotations

import itertools
from pathlib import Path

import numpy as np
import pytest

from faq_search.encoding.windows import split_windows
from faq_search.export.spans import Span, TextRun, plan_spans, word_starts


def test_windows_cut_at_word_starts_and_cover_everything() -> None:
    # 40 words of 3 pieces each: 120 pieces in windows of at most 20
    word_ids = [w for w in range(40) for _ in range(3)]
    spans = plan_spans(word_ids, 20, windows=True)
    assert spans[0][0] == 0 and spans[-1][1] == 120
    for (start, end), (next_start, _) in itertools.pairwise(spans):
        assert end - start <= 20
        assert start % 3 == 0 and end % 3 == 0  # never inside a word
        assert start < next_start < end  # overlapping, always moving on
    assert plan_spans(word_ids, 20, windows=False) == [(0, 18)]
    assert plan_spans(word_ids[:15], 20, windows=True) == [(0, 15)]
    # one word longer than a window is cut where it must be
    assert plan_spans([0] * 50, 20, windows=False) == [(0, 20)]
    assert plan_spans([0] * 50, 20, windows=True)[-1][1] == 50


def test_the_docstring_examples() -> None:
    word_ids = [piece // 2 for piece in range(20)]  # ten words of two pieces
    assert plan_spans(word_ids, 6, windows=True) == [
        (0, 6),
        (2, 8),
        (4, 10),
        (6, 12),
        (8, 14),
        (10, 16),
        (12, 18),
        (14, 20),
    ]
    assert plan_spans(word_ids, 6, windows=False) == [(0, 6)]
    assert word_starts([0, 0, 1, None, 2, 2]) == [0, 2, 3, 4]


def run_of(word_ids: list[int | None], budget: int) -> TextRun:
    """A run whose window ``w`` gives content piece ``p`` the one-value vector ``100 * w + p``."""
    spans = [Span(window, start, end) for window, (start, end) in enumerate(plan_spans(word_ids, budget, True))]
    vectors = {
        s.window: np.array([[-1.0]] + [[100.0 * s.window + p] for p in range(s.start, s.end)] + [[-2.0]]) for s in spans
    }
    return TextRun(
        text="",
        tokens=[f"p{p}" for p in range(len(word_ids))],
        offsets=[(p, p + 1) for p in range(len(word_ids))],
        word_ids=word_ids,
        prefix=["[CLS]"],
        suffix=["[SEP]"],
        spans=spans,
        window_vectors=vectors,
        width=1,
    )


def test_each_word_takes_the_window_where_it_has_most_context() -> None:
    word_ids: list[int | None] = [w for w in range(12) for _ in range(1 + w % 3)]  # words of 1, 2 and 3 pieces
    run = run_of(word_ids, 8)
    assert len(run.spans) > 2 and run.kept == len(word_ids)
    owners = run.owners()
    assert len(owners) == len(word_ids)
    for start, end in run.word_spans():
        assert len({owners[p] for p in range(start, end)}) == 1  # a word's pieces come from one window
        owner = owners[start]
        holding = [s for s in run.spans if s.start <= start and end <= s.end]
        context = [min(start - s.start, s.end - end) for s in holding]
        assert min(start - owner.start, owner.end - end) == max(context)
        for piece in range(start, end):
            assert run.vector_of(piece, owner)[0] == 100 * owner.window + piece


@pytest.fixture(scope="module")
def bare_tokenizer():  # type: ignore[no-untyped-def]
    """The bundled model's tokenizer without truncation (no model weights, no torch)."""
    import tokenizers

    from faq_search.encoding.encoder import resolve_model

    tokenizer = tokenizers.Tokenizer.from_file(str(Path(resolve_model("default")[0]) / "tokenizer.json"))
    tokenizer.no_truncation()
    tokenizer.no_padding()
    return tokenizer


def test_index_windows_and_token_windows_differ_as_documented(bare_tokenizer) -> None:  # type: ignore[no-untyped-def]
    """The two splitters' docstrings: index rows overlap by a quarter, token windows by half; long words differ."""
    words = "one two three four five six seven eight nine ten eleven twelve thirteen fourteen fifteen sixteen"
    words += " seventeen eighteen nineteen twenty"
    rows = split_windows(bare_tokenizer, words, 10)  # 8 pieces besides [CLS]/[SEP], one piece per word
    assert rows == [
        "one two three four five six seven eight",
        "seven eight nine ten eleven twelve thirteen fourteen",
        "thirteen fourteen fifteen sixteen seventeen eighteen nineteen twenty",
    ]  # steps of 6 = three quarters of 8
    assert plan_spans(list(range(20)), 8, windows=True) == [(0, 8), (4, 12), (8, 16), (12, 20)]  # steps of 4: half

    long_word = "Hello " + "qzxjvk" * 6 + " world"  # 36 pieces in the middle word
    encoding = bare_tokenizer.encode(long_word, add_special_tokens=False)
    assert len(encoding.ids) == 38
    assert split_windows(bare_tokenizer, long_word, 32)[:4] == ["Hello", "q", "z", "x"]  # shrinks to one piece
    spans = plan_spans(list(encoding.word_ids), 30, windows=True)
    assert spans[1] == (1, 31)  # cut at the full width
