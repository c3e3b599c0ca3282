"""Records and their readable summary (hand-made results, no model)."""

from __future__ import annotations

import pytest

from faq_search.export.embeddings import Level
from tests.export.samples import fabricated


def test_summary_and_warning_of_a_cut_text() -> None:
    result = fabricated(Level.TOKEN)
    assert result.vector_count == 4 and result.truncated_count == 1
    warning = result.truncation_warning()
    assert warning is not None and "1 of 2 texts" in warning and "3 word pieces" in warning
    text = result.summary(show_tokens=True)
    assert "4 token vectors of 4 dims (not normalised)" in text
    assert "[CLS]" in text and "3:8" in text and "3 pieces past the window" in text
    assert fabricated(Level.SENTENCE).truncation_warning() is None


def test_records_are_read_only() -> None:
    record = fabricated(Level.TOKEN).records[0]
    with pytest.raises(AttributeError):
        record.text = "changed"  # type: ignore[misc]
