"""Checks on the real FAQ sets beside the checkout (../shared/data), with the bundled model."""

from __future__ import annotations

import pytest

from faq_search.corpus import read_faq
from faq_search.encoding.encoder import BertEncoder
from faq_search.index.faq_index import FaqIndex
from faq_search.quality.evaluate import evaluate, read_queries
from tests.conftest import SHARED_DATA

pytestmark = pytest.mark.model


@pytest.fixture(scope="module")
def stackfaq_index() -> FaqIndex:
    if not (SHARED_DATA / "stackfaq" / "faq.csv").is_file():
        pytest.fail(f"the shared FAQ sets are missing: expected them at {SHARED_DATA}")
    return FaqIndex.build(read_faq(SHARED_DATA / "stackfaq" / "faq.csv"), encoder=BertEncoder())


def test_delete_facebook_account_ranks_first(stackfaq_index: FaqIndex) -> None:
    top = stackfaq_index.ask("how do I delete my facebook account", k=3)[0]
    text = f"{top.entry.question} {top.entry.answer}".lower()
    assert "facebook" in text
    assert "delet" in text


def test_default_settings_quality_on_stackfaq(stackfaq_index: FaqIndex) -> None:
    """Guards the measured baseline (MRR@10 0.758 at layer -2 mean, question+answer) against regressions."""
    queries = read_queries(SHARED_DATA / "stackfaq" / "queries.csv", known_ids=[e.id for e in stackfaq_index.entries])
    metrics = evaluate(stackfaq_index, queries)
    assert metrics.queries == 1249
    assert metrics.mrr_at_10 > 0.74
    assert metrics.recall_at_10 > 0.76
