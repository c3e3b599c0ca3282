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
