"""Shared fixtures: a deterministic fake encoder for fast tests, the real model once per session.

The evaluation sets (``stackfaq``, ``covidfaq_jhu``) live outside the
repository, in ``../shared/data`` beside the checkout, or wherever the
environment variable ``FAQ_SEARCH_SHARED_DATA`` points. A fresh clone has
neither: tests that need the sets call :func:`shared_set`, which skips them
with that reason, except under CI (``CI`` set), where a missing set fails.
"""

from __future__ import annotations

import hashlib
import os
import re
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import pytest

from faq_search.encoding.settings import EncoderIdentity, EncoderSettings, Precision

REPO = Path(__file__).resolve().parent.parent
DATA = REPO / "data"
SHARED_DATA_ENV = "FAQ_SEARCH_SHARED_DATA"
SHARED_DATA = Path(os.environ.get(SHARED_DATA_ENV) or REPO.parent / "shared" / "data")
SHARED_FILES = ("faq.csv", "queries.csv")


def skip_or_fail(problem: str) -> None:
    """Skip a test whose prerequisite is missing; under CI (``CI`` set) fail it, so nothing is silently untested."""
    if os.environ.get("CI"):
        pytest.fail(problem)
    pytest.skip(problem)


def shared_set(name: str) -> Path:
    """The folder of one shared evaluation set (``faq.csv``, ``queries.csv``); skips (fails under CI) without it."""
    folder = SHARED_DATA / name
    missing = [file for file in SHARED_FILES if not (folder / file).is_file()]
    if missing:
        skip_or_fail(
            f"the shared FAQ sets are missing: no {', '.join(missing)} in {folder}; "
            f"put shared/data beside the checkout or set {SHARED_DATA_ENV}"
        )
    return folder


class FakeEncoder:
    """Bag of hashed words: texts sharing words get similar vectors. Deterministic, no model.

    It takes texts whole (``windows`` is None), as an encoder without a token window would.
    """

    windows = None
    precision = Precision.FP32

    def __init__(self, dimension: int = 64, name: str = "fake") -> None:
        self._dimension = dimension
        self.name = name
        self.settings = EncoderSettings(model=name)
        self.calls: list[list[str]] = []

    @property
    def dimension(self) -> int:
        return self._dimension

    @property
    def identity(self) -> EncoderIdentity:
        return EncoderIdentity(
            model_name=self.name,
            weights_sha256=hashlib.sha256(self.name.encode()).hexdigest(),
            layer=self.settings.layer,
            pooling=self.settings.pooling.value,
            include_special=self.settings.include_special,
            max_seq_len=self.settings.max_seq_len,
            dimension=self._dimension,
        )

    def encode(self, texts: Sequence[str]) -> np.ndarray:
        self.calls.append(list(texts))
        out = np.zeros((len(texts), self._dimension), dtype=np.float32)
        for row, text in enumerate(texts):
            for word in re.findall(r"\w+", text.lower()) or ["<empty>"]:
                digest = hashlib.md5(word.encode()).digest()
                out[row, digest[0] % self._dimension] += 1.0 if digest[1] % 2 else -1.0
            norm = np.linalg.norm(out[row])
            out[row] = out[row] / norm if norm else out[row]
        return out


def tree(path: Path) -> dict[str, bytes]:
    """Every file under ``path`` by relative name (a bundle keeps its BM25 index in lexical/)."""
    return {p.relative_to(path).as_posix(): p.read_bytes() for p in sorted(path.rglob("*")) if p.is_file()}


@pytest.fixture
def fake_encoder() -> FakeEncoder:
    return FakeEncoder()


@pytest.fixture(scope="session")
def real_encoder():  # type: ignore[no-untyped-def]
    """The bundled all-MiniLM-L6-v2 at default settings in fp32, loaded once."""
    from faq_search.encoding.encoder import BertEncoder

    return BertEncoder(EncoderSettings(precision="fp32"))


@pytest.fixture(scope="session")
def sample_faq() -> Path:
    return DATA / "faq.csv"
