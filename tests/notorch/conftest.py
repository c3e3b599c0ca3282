"""The torch-free tests' bundle: built here where torch is installed, else given by ``$FAQ_SEARCH_NOTORCH_DIR``."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from faq_search.encoding.runtime import installed
from tests.conftest import skip_or_fail
from tests.notorch import reference

DIR_ENV = "FAQ_SEARCH_NOTORCH_DIR"


@pytest.fixture(scope="session")
def notorch_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A folder with the sample bundle (with its ONNX graph) and torch's reference answers."""
    given = os.environ.get(DIR_ENV)
    if given:
        return Path(given)
    if not installed("torch"):
        skip_or_fail(f"no torch to build the test bundle with; build it elsewhere and set {DIR_ENV} (make test)")
    return reference.build(tmp_path_factory.mktemp("notorch"))
