"""Verifying a bundle end to end: files, counts, vectors, and a re-embedded sample.

``faq-search check`` runs :func:`check_bundle`. Loading a bundle already
verifies every checksum; this goes further and recomputes what the bundle
claims: every row belongs to an entry and embeds the text its digest names,
every vector is finite and of unit length, and a sample of rows re-embedded
with the bundle's own encoder settings lands on the stored vectors (cosine at
least 0.999, which bf16 rounding and batch effects stay well above).

It does not judge retrieval quality (that is ``faq-search eval``).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from faq_search.bundle.files import MANIFEST, looks_like_bundle, manifest_is_sealed, read_bundle
from faq_search.encoding.protocol import Encoder
from faq_search.errors import BundleError, FaqSearchError
from faq_search.index.rows import ANSWER, QUESTION, embedding_rows, text_digest

MIN_COSINE = 0.999
"""A re-embedded row must be at least this close to its stored vector."""

NORM_TOLERANCE = 1e-3


@dataclass(frozen=True)
class Finding:
    """One verified property of a bundle: ``ok``, and what was seen."""

    name: str
    ok: bool
    detail: str


@dataclass(frozen=True)
class CheckReport:
    """Everything :func:`check_bundle` looked at; ``ok`` when nothing is wrong."""

    path: Path
    findings: list[Finding] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return all(f.ok for f in self.findings)

    def to_dict(self) -> dict[str, object]:
        return {
            "index": str(self.path),
            "ok": self.ok,
            "findings": [{"name": f.name, "ok": f.ok, "detail": f.detail} for f in self.findings],
        }


def check_bundle(
    path: str | Path,
    *,
    sample: int = 32,
    encoder: Encoder | None = None,
    model_path: str | None = None,
    threads: int | None = None,
    seed: int = 0,
) -> CheckReport:
    """Verify the bundle at ``path``; problems are findings, not exceptions.

    Where there is no bundle at all, the usual :class:`BundleError` is raised.

    ``sample`` rows (0 for none) are re-embedded with ``encoder``, or with the
    bundle's own settings (the model from ``model_path`` if it moved). A model
    that cannot be loaded still raises its :class:`~faq_search.errors.ModelError`.
    """
    from faq_search.index.faq_index import FaqIndex

    target = Path(path)
    if not looks_like_bundle(target):
        read_bundle(target)  # no index there at all: the usual one-line error, not a report
    report = CheckReport(target)
    found = report.findings
    try:
        manifest, files = read_bundle(target)
    except BundleError as exc:
        found.append(Finding("files", False, str(exc)))
        return report
    sealed = manifest_is_sealed((target / MANIFEST).read_bytes())
    seal = "its own SHA-256 matches" if sealed else "no self-checksum (an older bundle; re-index to add one)"
    found.append(Finding("manifest", True, f"format {manifest.format_version}, {seal}"))
    for name, info in sorted(manifest.files.items()):
        found.append(Finding(f"file {name}", True, f"{info['bytes']} bytes, SHA-256 {str(info['sha256'])[:16]}... ok"))
    listed = {MANIFEST, *manifest.files}
    present = (str(p.relative_to(target)) for p in target.rglob("*") if p.is_file())
    strays = sorted(name for name in present if name not in listed)
    if strays:
        found.append(Finding("unlisted files", True, "ignored: " + ", ".join(strays[:5])))
    del files

    try:
        index = FaqIndex.load(target, encoder=encoder, model_path=model_path, threads=threads)
    except BundleError as exc:
        found.append(Finding("contents", False, str(exc)))
        return report
    store = index.store
    ids = [e.id for e in index.entries]
    rows_per_entry = np.bincount(store.row_entry, minlength=len(index.entries))
    problems = []
    if len(set(ids)) != len(ids):
        problems.append("duplicate entry ids")
    if (rows_per_entry == 0).any():
        problems.append(f"{int((rows_per_entry == 0).sum())} entries have no vector")
    if not set(store.row_field) <= {QUESTION, ANSWER}:
        problems.append("rows name an unknown field")
    found.append(
        Finding(
            "counts",
            not problems,
            "; ".join(problems)
            or f"{len(index.entries)} entries, {len(store)} vectors ({'+'.join(manifest.fields)}), "
            f"dimension {store.dimension}, as the manifest says",
        )
    )

    vectors = index.stored_vectors()
    if vectors is None:
        found.append(
            Finding("vectors", True, f"not checked: the {index.manifest.index_type.value} index keeps no exact vectors")
        )
    else:
        norms = np.linalg.norm(vectors, axis=1)
        finite = bool(np.isfinite(vectors).all())
        off = int((np.abs(norms - 1.0) > NORM_TOLERANCE).sum()) if finite else len(vectors)
        found.append(
            Finding(
                "vectors",
                finite and off == 0,
                "all finite and of unit length"
                if finite and off == 0
                else (f"{off} vectors are not of unit length" if finite else "some vectors are not finite (NaN/inf)"),
            )
        )

    try:
        live = index.encoder
    except FaqSearchError as exc:
        if isinstance(exc, BundleError):  # the encoder's settings differ from the bundle's
            found.append(Finding("encoder", False, str(exc)))
            return report
        raise
    texts, row_entry, row_field = embedding_rows(index.entries, index.fields_policy, live.windows)
    layout_ok = row_entry == store.row_entry.tolist() and row_field == store.row_field
    digests_ok = index.row_digests is None or [text_digest(t) for t in texts] == index.row_digests
    if not (layout_ok and digests_ok):
        rows_detail = "the rows do not match the entries' texts; rebuild the index"
    elif index.row_digests is None:
        rows_detail = "rows follow the entries (an older bundle: no text digests)"
    else:
        rows_detail = "every row embeds the text its digest names"
    found.append(Finding("rows", layout_ok and digests_ok, rows_detail))
    if sample > 0 and vectors is not None and layout_ok:
        rng = np.random.default_rng(seed)
        picked = np.sort(rng.choice(len(texts), size=min(sample, len(texts)), replace=False))
        fresh = live.encode([texts[i] for i in picked])
        cosines = np.sum(fresh * vectors[picked], axis=1)
        worst = float(cosines.min())
        found.append(
            Finding(
                "re-embedded sample",
                worst >= MIN_COSINE,
                f"{len(picked)} rows re-embedded with the bundle's settings: lowest cosine {worst:.5f} "
                f"({'>=' if worst >= MIN_COSINE else '<'} {MIN_COSINE})",
            )
        )
    return report
