"""Where a build runs its encoder: the closed choice ``index --engine`` offers (light: the CLI's help imports it)."""

from __future__ import annotations

import enum


class Engine(str, enum.Enum):
    """Where ``faq-search index`` runs the encoder (see :mod:`faq_search.index.ray_build` for ``ray``)."""

    LOCAL = "local"  # this process
    RAY = "ray"  # a Ray cluster (a local one when no address is given)
