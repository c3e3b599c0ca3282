"""What an index knows about itself, typed: the bundle manifest as the index reads it.

:class:`IndexManifest` is parsed once from the bundle's
:class:`~faq_search.bundle.files.Manifest` (whose encoder, settings and fusion
records are plain dicts, as JSON holds them) when a bundle is loaded, and
turned back into one when it is saved. In between, the index reads typed
fields and never re-parses; it is changed only through
:meth:`faq_search.index.faq_index.FaqIndex.revise`.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from faq_search.bundle.manifest import FORMAT_VERSION, Manifest, now_iso
from faq_search.encoding.settings import EncoderIdentity, EncoderSettings
from faq_search.errors import BundleError, InputError
from faq_search.index.confidence import ConfidenceModel
from faq_search.index.lexical import HybridSettings
from faq_search.index.store import IndexType


@dataclass(frozen=True)
class IndexManifest:
    """The typed manifest of an index: how its vectors were made, what it holds, how it answers."""

    identity: EncoderIdentity
    settings: EncoderSettings
    precision: str  # the precision the vectors were computed with
    entry_count: int
    vector_count: int
    fields: tuple[str, ...]  # the embedded fields: ("answer",) or ("question", "answer")
    index_type: IndexType = IndexType.FLAT
    min_score: float | None = None  # a confidence threshold in [0, 1]
    hybrid: HybridSettings = field(default_factory=lambda: HybridSettings(weight=0.0))  # weight 0: dense only
    confidence: ConfidenceModel | None = None  # fitted by `faq-search calibrate`; None: the shipped model
    adaptation: Mapping[str, Any] | None = None  # base model, settings and scores of `faq-search adapt`, if run
    source: str | None = None
    created: str = field(default_factory=now_iso)
    files: Mapping[str, Mapping[str, Any]] = field(default_factory=dict)  # filled in by the bundle writer
    build: Mapping[str, str] = field(default_factory=dict)  # library versions; filled in by the bundle writer
    format_version: int = FORMAT_VERSION  # the bundle's format (older ones are upgraded on read)

    @classmethod
    def from_bundle(cls, manifest: Manifest, where: str | Path | None = None) -> IndexManifest:
        """Parse a bundle manifest's records; :class:`BundleError` (naming ``where``) when they are unusable."""
        prefix = "" if where is None else f"{where}: "
        try:
            identity = EncoderIdentity.from_dict(manifest.encoder)
            settings = EncoderSettings.from_dict(manifest.settings)
            hybrid = HybridSettings.from_dict(manifest.hybrid)
            index_type = IndexType(manifest.index_type)
        except (TypeError, ValueError, InputError) as exc:
            raise BundleError(
                f"{prefix}the manifest's encoder or hybrid settings are unusable ({exc}); rebuild it"
            ) from None
        try:
            model = None if manifest.confidence is None else ConfidenceModel.from_dict(manifest.confidence)
        except InputError as exc:
            raise BundleError(f"{prefix}{exc}") from None
        return cls(
            identity=identity,
            settings=settings,
            precision=manifest.precision,
            entry_count=manifest.entry_count,
            vector_count=manifest.vector_count,
            fields=tuple(manifest.fields),
            index_type=index_type,
            min_score=manifest.min_score,
            hybrid=hybrid,
            confidence=model,
            adaptation=manifest.adaptation,
            source=manifest.source,
            created=manifest.created,
            files=manifest.files,
            build=manifest.build,
            format_version=manifest.format_version,
        )

    def to_bundle(self) -> Manifest:
        """The bundle manifest with the same content (fusion recorded as None when it is off)."""
        return Manifest(
            encoder=self.identity.to_dict(),
            settings=self.settings.to_dict(),
            precision=self.precision,
            entry_count=self.entry_count,
            vector_count=self.vector_count,
            fields=self.fields,
            index_type=self.index_type.value,
            min_score=self.min_score,
            hybrid=self.hybrid.to_dict() if self.hybrid.enabled else None,
            confidence=None if self.confidence is None else self.confidence.to_dict(),
            adaptation=self.adaptation,
            source=self.source,
            created=self.created,
            files=self.files,
            build=self.build,
            format_version=self.format_version,
        )

    def to_dict(self) -> dict[str, Any]:
        """The JSON of ``manifest.json`` (less its seal), as the CLI and the service show it."""
        return self.to_bundle().to_dict()
