"""The typed manifest: parsed once from the bundle's, written back unchanged, edited through FaqIndex.revise."""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path

import pytest

from faq_search.bundle.files import MANIFEST, read_bundle
from faq_search.bundle.manifest import SEAL
from faq_search.encoding.settings import EncoderSettings
from faq_search.errors import BundleError, SettingsMismatchError
from faq_search.index import confidence
from faq_search.index.faq_index import FaqIndex
from faq_search.index.lexical import HybridSettings
from faq_search.index.manifest import IndexManifest
from faq_search.index.store import IndexType
from tests.conftest import FakeEncoder
from tests.index.conftest import ENTRIES


@pytest.mark.parametrize("weight", [0.0, 0.5])
def test_the_manifest_round_trips_to_the_same_json(tmp_path: Path, fake_encoder: FakeEncoder, weight: float) -> None:
    index = FaqIndex.build(ENTRIES, encoder=fake_encoder, hybrid=HybridSettings(weight=weight))
    index.revise(min_score=0.3, source="shop.csv")
    index.save(tmp_path / "bundle")
    on_disk = json.loads((tmp_path / "bundle" / MANIFEST).read_text(encoding="utf-8"))
    del on_disk[SEAL], on_disk["format"]
    assert {k: v for k, v in index.manifest.to_dict().items() if k != "format"} == on_disk
    assert on_disk["hybrid"] == (None if weight == 0 else HybridSettings(weight=weight).to_dict())
    bundle_manifest, _ = read_bundle(tmp_path / "bundle")
    typed = IndexManifest.from_bundle(bundle_manifest)
    assert typed == index.manifest == FaqIndex.load(tmp_path / "bundle").manifest
    assert typed.to_bundle() == bundle_manifest
    assert typed.index_type is IndexType.FLAT and typed.identity == fake_encoder.identity


@pytest.mark.parametrize(
    "change",
    [{"settings": {"pooling": "no-such-pooling"}}, {"hybrid": {"weight": -1}}, {"index_type": "no-such-type"}],
)
def test_unusable_manifest_records_are_bundle_errors(fake_encoder: FakeEncoder, change: dict[str, object]) -> None:
    bundle_manifest = FaqIndex.build(ENTRIES, encoder=fake_encoder).manifest.to_bundle()
    broken = dataclasses.replace(bundle_manifest, **change)  # type: ignore[arg-type]
    with pytest.raises(BundleError, match=r"somewhere: .* unusable .*; rebuild it"):
        IndexManifest.from_bundle(broken, where="somewhere")


def test_revise_changes_fields_and_keeps_the_rest(fake_encoder: FakeEncoder) -> None:
    index = FaqIndex.build(ENTRIES, encoder=fake_encoder)
    before = index.manifest
    after = index.revise(min_score=0.4, source="faq.csv")
    assert index.manifest is after and (after.min_score, after.source) == (0.4, "faq.csv")
    assert dataclasses.replace(after, min_score=None, source=None) == before


def test_a_revised_fusion_setting_rebuilds_the_bm25_index(fake_encoder: FakeEncoder) -> None:
    index = FaqIndex.build(ENTRIES, encoder=fake_encoder, hybrid=HybridSettings(weight=0.5, k1=1.5))
    old = index.lexical
    index.revise(hybrid=HybridSettings(weight=0.5, k1=0.5))
    assert index.hybrid.k1 == 0.5 and index.lexical is not old
    expected = FaqIndex.build(ENTRIES, encoder=fake_encoder, hybrid=HybridSettings(weight=0.5, k1=0.5))
    assert [m.score for m in index.ask("reset my password", k=6)] == [
        m.score for m in expected.ask("reset my password", k=6)
    ]


def test_revising_the_identity_is_checked_against_the_loaded_encoder(fake_encoder: FakeEncoder) -> None:
    index = FaqIndex.build(ENTRIES, encoder=fake_encoder)
    index.revise(identity=dataclasses.replace(index.identity, model_name="renamed"))  # same weights: fine
    assert index.identity.model_name == "renamed"
    with pytest.raises(SettingsMismatchError, match="query with the index's own settings"):
        index.revise(identity=dataclasses.replace(index.identity, layer="-3"))
    assert index.identity.layer != "-3"  # a refused revision changes nothing


def test_identity_settings_and_hybrid_read_the_typed_manifest(fake_encoder: FakeEncoder) -> None:
    index = FaqIndex.build(ENTRIES, encoder=fake_encoder, hybrid=HybridSettings(weight=0.0))
    assert index.identity is index.manifest.identity
    assert isinstance(index.settings, EncoderSettings) and index.settings is index.manifest.settings
    assert index.hybrid is index.manifest.hybrid and not index.hybrid.enabled


def _rewrite(path: Path, **changes: object) -> None:
    from faq_search.bundle.manifest import seal_manifest

    data = json.loads((path / MANIFEST).read_text(encoding="utf-8"))
    data.update(changes)
    (path / MANIFEST).write_bytes(seal_manifest(data))


def test_a_version_1_threshold_is_dropped_it_was_not_a_confidence(tmp_path: Path, fake_encoder: FakeEncoder) -> None:
    index = FaqIndex.build(ENTRIES, encoder=fake_encoder, hybrid=HybridSettings(weight=0.5))
    index.save(tmp_path / "bundle")
    data = json.loads((tmp_path / "bundle" / MANIFEST).read_text(encoding="utf-8"))
    del data["confidence"], data["build"]  # a version-1 manifest has neither
    _rewrite_from(tmp_path / "bundle", {**data, "format_version": 1, "min_score": 1.37})  # a fused score
    old = FaqIndex.load(tmp_path / "bundle", encoder=fake_encoder)
    assert old.manifest.min_score is None and old.manifest.confidence is None
    assert old.confidence_model == confidence.default_model()
    assert old.ask("when will my parcel arrive")  # no filter on the old scale


def _rewrite_from(path: Path, data: dict[str, object]) -> None:
    from faq_search.bundle.manifest import seal_manifest

    (path / MANIFEST).write_bytes(seal_manifest(data))


def test_a_calibrated_model_round_trips_and_scores(tmp_path: Path, fake_encoder: FakeEncoder) -> None:
    index = FaqIndex.build(ENTRIES, encoder=fake_encoder, hybrid=HybridSettings(weight=0.5))
    before = index.ask("when will my parcel arrive", k=2, min_score=0.0)
    model = confidence.ConfidenceModel((2.0, 1.0), -1.0, fitted_on="test")
    index.revise(confidence=model, min_score=0.5)
    index.save(tmp_path / "bundle")
    loaded = FaqIndex.load(tmp_path / "bundle", encoder=fake_encoder)
    assert loaded.manifest.confidence == model and loaded.confidence_model == model
    after = loaded.ask("when will my parcel arrive", k=2, min_score=0.0)
    assert [m.entry.id for m in after] == [m.entry.id for m in before]  # the model scores, it does not rerank
    assert [m.score for m in after] != [m.score for m in before]
    (_, rows), *_ = loaded.candidate_features(["when will my parcel arrive"])
    assert [m.score for m in after] == pytest.approx(model.predict(rows[:2]).tolist())
    loaded.upsert([dataclasses.replace(ENTRIES[0], answer="Parcels ship within two days.")])
    assert loaded.manifest.confidence == model and loaded.manifest.min_score == 0.5  # kept through an update


def test_an_unreadable_confidence_model_is_a_bundle_error(tmp_path: Path, fake_encoder: FakeEncoder) -> None:
    FaqIndex.build(ENTRIES, encoder=fake_encoder).save(tmp_path / "bundle")
    _rewrite(tmp_path / "bundle", confidence={"version": 1, "kind": "logistic", "features": ["cosine"]})
    with pytest.raises(BundleError, match="run faq-search calibrate again"):
        FaqIndex.load(tmp_path / "bundle", encoder=fake_encoder)
