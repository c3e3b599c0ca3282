"""Keeping a bundle on disk up to date: incremental re-indexing that survives being killed.

:func:`update_bundle` is what ``faq-search index FILE --out DIR`` runs. When
``DIR`` already holds a bundle built with the same encoder (identity and
precision), the vectors of every text it embedded are reused and only new or
edited texts are encoded; removed entries are dropped. The result equals a
full rebuild from the file (same rows, same order, same vectors).

Crash safety comes from two things: the bundle is replaced by one atomic
directory swap (:func:`faq_search.bundle.files.write_bundle`), so a kill at any
moment leaves the old bundle or the new one, never a mix; and vectors are
written to a resume cache as they are computed (:mod:`faq_search.index.cache`), so a
rerun after a kill encodes only what the killed run had not finished.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from faq_search.bundle.files import check_writable, looks_like_bundle
from faq_search.corpus import FaqEntry, read_faq
from faq_search.encoding.protocol import Encoder
from faq_search.encoding.settings import ADAPTED_MODEL, EncoderSettings
from faq_search.errors import BundleError
from faq_search.index.build import BuildOptions
from faq_search.index.cache import EmbeddingCache
from faq_search.index.columns import ColumnSpec
from faq_search.index.faq_index import FaqIndex
from faq_search.index.onnx_files import carried_onnx_files
from faq_search.index.records import compare_entries


def update_bundle(
    path: str | Path,
    source: str | Path | Sequence[FaqEntry],
    options: BuildOptions | None = None,
    *,
    encoder: Encoder | None = None,
    source_name: str | None = None,
    full: bool = False,
    keep_adapted: bool = True,
    **changes: Any,
) -> FaqIndex:
    """Index an FAQ into the bundle directory ``path``, re-embedding only what changed there.

    ``options`` (:class:`~faq_search.index.build.BuildOptions`, or its fields
    as keywords) are as for :meth:`FaqIndex.build`; its ``metadata_columns``
    None keeps those of the bundle at ``path`` (re-read from the new entries).
    ``full`` re-embeds every text (the previous bundle is still compared with,
    for the report). The returned index's ``report`` counts added, changed,
    removed and unchanged entries, and texts encoded, reused and resumed; its
    ``reuse_note`` says why the previous bundle's vectors were not used, if so.
    A calibrated confidence model and ``min_score`` are kept when the encoder
    and the lexical evidence (on/off, language) are unchanged: the features
    they were fitted on mean the same, and a confidence does not depend on the
    FAQ's size. With a Ray ``engine`` the reuse, the resume cache and the
    written bundle are the same as in a local run.

    ``keep_adapted``: when the bundle at ``path`` carries an adapted encoder
    (``faq-search adapt``) and no ``encoder`` is given, index with that encoder
    (``options.settings.model`` is then ignored) and carry it into the new bundle.
    """
    options = (options or BuildOptions()).revised(**changes)
    target = Path(path)
    check_writable(target)  # before any embedding work, not after it
    entries = read_faq(source) if isinstance(source, (str, Path)) else list(source)
    if source_name is None and isinstance(source, (str, Path)):
        source_name = Path(source).name
    previous, problem = _previous(target)
    adapted = previous if keep_adapted and encoder is None and previous is not None and previous.is_adapted else None
    if adapted is not None:
        options = options.revised(
            settings=dataclasses.replace(options.settings or EncoderSettings(), model=str(adapted.own_encoder_dir()))
        )
    if encoder is None:
        encoder = options.load_encoder()
    precision = encoder.precision.value
    cache = EmbeddingCache.beside(target, encoder.identity.to_dict(), precision, encoder.dimension)
    if full:
        cache.clear()
    options = options.revised(metadata_columns=_columns(options.metadata_columns, previous))
    index = FaqIndex.build(entries, options, encoder=encoder, reuse=None if full else previous, cache=cache)
    index.revise(source=source_name)
    if adapted is not None:
        index.revise(
            identity=dataclasses.replace(index.identity, model_name=adapted.identity.model_name),
            settings=dataclasses.replace(index.settings, model=ADAPTED_MODEL),
            adaptation=adapted.manifest.adaptation,
        )
        index.extra_files = adapted.encoder_files()
    index.extra_files.update(carried_onnx_files(previous, index))
    if (
        previous is not None
        and previous.identity == index.identity
        and previous.hybrid.enabled == index.hybrid.enabled
        and previous.hybrid.language == index.hybrid.language
    ):  # the same evidence: the calibrated model and its threshold still apply (the threshold needs its model)
        index.revise(min_score=previous.manifest.min_score, confidence=previous.manifest.confidence)
    if index.report is not None:
        note = problem or index.report.reuse_note
        if full and previous is not None:
            note = "--full: every text was embedded again"
        index.report = dataclasses.replace(
            index.report,
            changes=None if previous is None else compare_entries(previous.entries, entries),
            reuse_note=note,
        )
    index.save(target)
    cache.clear()
    return index


def _columns(given: Sequence[str | ColumnSpec] | None, previous: FaqIndex | None) -> Sequence[str | ColumnSpec]:
    """The filterable columns to build: those given, else the previous bundle's (name and type)."""
    if given is not None:
        return list(given)
    return [] if previous is None or previous.columns is None else list(previous.columns.specs)


def _previous(target: Path) -> tuple[FaqIndex | None, str | None]:
    """The bundle already at ``target`` (loaded without its encoder), or why it cannot be used."""
    if not looks_like_bundle(target):
        return None, None
    try:
        return FaqIndex.load(target), None
    except BundleError as exc:
        return None, f"the index already at {target} cannot be read ({exc}); it is rebuilt from scratch"
