"""One progress helper for long work: a tqdm bar on stderr, or nothing.

A bar is shown only when asked for, when there is work, when stderr is a
terminal and ``$FAQ_SEARCH_NO_PROGRESS`` is unset, so scripts, pipes, tests and
``--json`` output never see one. Callers get the same two methods either way.
"""

from __future__ import annotations

import os
import sys
from typing import Protocol


class Progress(Protocol):
    """What long work calls on its bar."""

    def update(self, n: int) -> None: ...

    def close(self) -> None: ...


class _Silent:
    def update(self, n: int) -> None:
        pass

    def close(self) -> None:
        pass


def progress_bar(total: int, enabled: bool, *, unit: str = "text", desc: str = "embedding") -> Progress:
    """A bar of ``total`` units when enabled and shown on a terminal; else a bar that draws nothing."""
    if not enabled or total <= 0 or not sys.stderr.isatty() or os.environ.get("FAQ_SEARCH_NO_PROGRESS"):
        return _Silent()
    from tqdm import tqdm

    bar: Progress = tqdm(total=total, unit=unit, desc=desc, file=sys.stderr, leave=False)  # type: ignore[assignment]
    return bar
