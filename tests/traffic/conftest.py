"""The sample FAQ indexed with the real model once for the traffic tests, and a log of questions asked of it."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from faq_search.index.faq_index import FaqIndex
from tests.conftest import DATA

RENTALS = (
    "can i rent a tent for a weekend",
    "do you rent out camping gear",
    "is there tent rental",
    "can I hire a sleeping bag",
    "Can I rent a tent for a weekend",  # asked again: counts twice in the volume, once as a question
)
SKI_WAX = ("can you wax my skis", "could you sharpen and wax my snowboard")
"""Two topics the sample FAQ lacks, which its index answers with low confidence."""


@pytest.fixture(scope="session")
def sample_bundle(tmp_path_factory: pytest.TempPathFactory, real_encoder: Any) -> Path:
    out = tmp_path_factory.mktemp("traffic") / "index"
    FaqIndex.build(DATA / "faq.csv", encoder=real_encoder).save(out)
    return out


@pytest.fixture(scope="session")
def sample_index(sample_bundle: Path, real_encoder: Any) -> FaqIndex:
    return FaqIndex.load(sample_bundle, encoder=real_encoder)
