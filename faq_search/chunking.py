"""Long texts -> overlapping windows that fit the encoder, so nothing is cut off.

BERT sees at most ``max_seq_len`` word pieces. An answer longer than that is
embedded as several windows of whole words that overlap by a quarter of a
window; each window is a row of the index, and the entry scores its best row.
"""

from __future__ import annotations

from typing import Any


def split_windows(tokenizer: Any, text: str, max_seq_len: int, overlap: float = 0.25) -> list[str]:
    """``text`` itself when it fits, else overlapping substrings that each fit.

    Windows start and end on word boundaries (never inside a word's pieces) and
    cover the whole text; consecutive windows share about ``overlap`` of a window.
    """
    encoded = tokenizer(text, add_special_tokens=False, return_offsets_mapping=True, truncation=False)
    offsets: list[tuple[int, int]] = encoded["offset_mapping"]
    budget = max_seq_len - tokenizer.num_special_tokens_to_add(pair=False)
    if len(offsets) <= budget:
        return [text]
    words = encoded.word_ids()
    step = max(1, int(budget * (1.0 - overlap)))
    windows: list[str] = []
    start = 0
    while True:
        end = min(start + budget, len(offsets))
        while end < len(offsets) and end > start + 1 and words[end] is not None and words[end] == words[end - 1]:
            end -= 1  # do not cut a word's pieces apart
        windows.append(text[offsets[start][0] : offsets[end - 1][1]])
        if end >= len(offsets):
            return windows
        nxt = max(start + 1, min(start + step, end))
        while nxt > start + 1 and words[nxt] is not None and words[nxt] == words[nxt - 1]:
            nxt -= 1  # start on a word's first piece
        start = nxt
