"""Where the benchmarks find the shared evaluation sets: ``--data DIR``.

The sets (``stackfaq``, ``covidfaq_jhu``: ``faq.csv`` + ``queries.csv`` each)
are not part of the repository. The default is ``../shared/data`` beside the
checkout, or ``$FAQ_SEARCH_SHARED_DATA`` when set (as for the tests). A
benchmark that needs a set and does not find it stops with one line saying
where it looked and to pass ``--data``, before loading any model.
"""

from __future__ import annotations

import argparse
import os
from collections.abc import Iterable
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
DEFAULT_DATA = Path(os.environ.get("FAQ_SEARCH_SHARED_DATA") or REPO.parent / "shared" / "data")
SET_FILES = ("faq.csv", "queries.csv")


def add_data_option(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--data",
        type=Path,
        default=DEFAULT_DATA,
        help=f"folder holding the shared sets (stackfaq/, covidfaq_jhu/); default {DEFAULT_DATA}",
    )


def require_sets(data: Path, names: Iterable[str]) -> Path:
    """``data`` when every named set is in it, else exit with one line (where we looked, pass --data).

    ``require_sets(Path("/x"), ["stackfaq"])`` -> exits with
    "the shared FAQ sets are missing: no /x/stackfaq/faq.csv; pass --data DIR (the folder holding stackfaq/)".
    """
    names = list(names)
    missing = [data / name / file for name in names for file in SET_FILES if not (data / name / file).is_file()]
    if missing:
        folders = ", ".join(f"{name}/" for name in names)
        raise SystemExit(
            f"the shared FAQ sets are missing: no {missing[0]}; pass --data DIR (the folder holding {folders})"
        )
    return data
