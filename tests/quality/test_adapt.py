"""faq-search adapt: training pairs, the guard, determinism, and bundles that carry their adapted encoder."""

from __future__ import annotations

import dataclasses
import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

from faq_search.corpus import FaqEntry, read_faq
from faq_search.encoding.encoder import BertEncoder
from faq_search.encoding.settings import ADAPTED_MODEL, EncoderSettings
from faq_search.errors import BundleError, InputError
from faq_search.index.faq_index import FaqIndex
from faq_search.index.update import update_bundle
from faq_search.quality import adapt as adapt_module
from faq_search.quality.adapt import AdaptReport, AdaptSettings, adapt, adapt_index, training_pairs
from faq_search.quality.queries import LabelledQuery

ENTRIES = [
    FaqEntry(id="a", answer="Refunds reach your card within five days.", questions=("When do I get my money back?",)),
    FaqEntry(id="b", answer="Parcels ship from our warehouse daily.", questions=("When will it ship?", "Shipping?")),
    FaqEntry(id="c", answer="Reset the password from the login page.", questions=()),
]


def run(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "faq_search", *args], capture_output=True, text=True, timeout=600, check=False
    )


def test_every_question_and_paraphrase_is_a_pair_plus_labelled_queries() -> None:
    queries = [LabelledQuery(query="forgot my password", relevant=frozenset({"c"})), LabelledQuery("x", frozenset())]
    pairs = training_pairs(ENTRIES, queries)
    assert [(p.question, p.entry) for p in pairs] == [
        ("When do I get my money back?", 0),
        ("When will it ship?", 1),
        ("Shipping?", 1),
        ("forgot my password", 2),
    ]
    assert pairs[-1].answer == ENTRIES[2].answer


def test_an_faq_without_questions_is_refused_before_the_model_loads(tmp_path: Path) -> None:
    no_questions = [dataclasses.replace(e, questions=()) for e in ENTRIES]
    with pytest.raises(InputError, match="needs question/answer pairs"):
        adapt_index(no_questions, settings=EncoderSettings(model=str(tmp_path / "no-such-model")))
    faq = tmp_path / "answers.csv"
    faq.write_text("id,answer\n1,Refunds take five days.\n2,We ship daily.\n", encoding="utf-8")
    result = run("adapt", str(faq), "--out", str(tmp_path / "out"))
    assert result.returncode == 2
    assert "needs question/answer pairs" in result.stderr and "--question-column" in result.stderr
    assert "Traceback" not in result.stderr
    assert not (tmp_path / "out").exists()


def test_bad_training_settings_are_input_errors() -> None:
    with pytest.raises(InputError, match="at least 1 epoch"):
        AdaptSettings(epochs=0)
    with pytest.raises(InputError, match="held-out share"):
        AdaptSettings(held_out=0.7)
    with pytest.raises(InputError, match="at least 1 other answer"):
        AdaptSettings(guard_answers=0)


def test_the_guard_ranks_the_held_out_answers_among_a_bounded_sample_of_the_others() -> None:
    entries = [FaqEntry(id=str(n), answer=f"answer {n}", questions=(f"question {n}",)) for n in range(50)]
    held = [p for p in training_pairs(entries) if p.entry in (3, 40)]
    guards = [
        adapt_module.HeldOutScorer(None, entries, held, 5, np.random.default_rng(seed))  # type: ignore[arg-type]
        for seed in (0, 0, 1)
    ]
    for guard in guards:
        assert {"answer 3", "answer 40"} <= set(guard.answers) and len(guard.answers) == 7
        assert guard.answers == sorted(guard.answers, key=lambda a: int(a.split()[1]))  # FAQ order kept
        assert [guard.answers[i] for (i,) in map(tuple, guard.relevant)] == ["answer 3", "answer 40"]
    assert guards[0].answers == guards[1].answers != guards[2].answers  # drawn by the seed
    everything = adapt_module.HeldOutScorer(None, entries, held, 300, np.random.default_rng(0))  # type: ignore[arg-type]
    assert len(everything.answers) == 50


def _state(encoder: BertEncoder) -> dict[str, torch.Tensor]:
    return {k: v.detach().clone() for k, v in encoder.model.state_dict().items()}


@pytest.mark.model
def test_the_guard_keeps_the_base_weights_when_training_hurts(sample_faq: Path) -> None:
    encoder = BertEncoder(EncoderSettings())
    before = _state(encoder)
    probe = encoder.encode(["where is my parcel"])
    # A learning rate this large wrecks the model within a step or two: the guard must refuse it.
    wrecking = AdaptSettings(max_pairs=16, batch_size=8, learning_rate=0.5, held_out=0.25, seed=1)
    report = adapt(encoder, read_faq(sample_faq), wrecking)
    assert report.steps >= 1
    assert report.kept is False and report.after <= report.before
    after = _state(encoder)
    assert all(torch.equal(before[name], after[name]) for name in before)
    np.testing.assert_array_equal(encoder.encode(["where is my parcel"]), probe)


@pytest.mark.model
def test_the_same_seed_gives_the_same_weights(sample_faq: Path) -> None:
    entries = read_faq(sample_faq)
    settings = AdaptSettings(max_pairs=16, batch_size=8, held_out=0.25, seed=7, epochs=1)
    states = []
    for _ in range(2):
        encoder = BertEncoder(EncoderSettings())
        before = _state(encoder)
        for parameter in encoder.model.parameters():  # train without the guard's veto: compare raw training
            parameter.requires_grad_(True)
        batch = adapt_module.training_pairs(entries)[: settings.batch_size]
        torch.manual_seed(settings.seed)
        optimizer = torch.optim.AdamW(encoder.model.parameters(), lr=1e-4)
        encoder.model.train()
        loss = adapt_module._loss(encoder, batch, settings)
        loss.backward()
        optimizer.step()
        encoder.model.eval()
        states.append(_state(encoder))
        assert any(not torch.equal(before[n], states[-1][n]) for n in before), "training changed nothing"
    assert all(torch.equal(states[0][name], states[1][name]) for name in states[0])

    encoders = [BertEncoder(EncoderSettings()) for _ in range(2)]
    reports = [adapt(encoder, entries, settings) for encoder in encoders]
    fields = ("pairs", "held_out_questions", "steps", "before", "after", "kept", "stopped")
    first, second = ([getattr(r, f) for f in fields] for r in reports)
    assert first == second
    adapted = [_state(encoder) for encoder in encoders]
    assert all(torch.equal(adapted[0][name], adapted[1][name]) for name in adapted[0])


def _fake_adapt(encoder: BertEncoder, *args: object, **kwargs: object) -> AdaptReport:
    """Stands in for training: a small, real change to the weights, reported as a win."""
    with torch.no_grad():
        for name, parameter in encoder.model.named_parameters():
            if name.endswith("output.dense.weight"):
                parameter.mul_(1.05)
    return AdaptReport(
        pairs=3, held_out_questions=1, steps=1, seconds=0.1, before=0.5, after=0.75, kept=True,
        stopped="epochs", peak_memory_mb=1.0,
    )  # fmt: skip


@pytest.mark.model
def test_an_adapted_bundle_carries_and_uses_its_encoder(
    tmp_path: Path, sample_faq: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    entries = read_faq(sample_faq)
    monkeypatch.setattr(adapt_module, "adapt", _fake_adapt)
    built, report = adapt_index(entries)
    assert report.kept
    base = BertEncoder(EncoderSettings())
    assert built.identity.weights_sha256 != base.weights_sha256
    out = built.save(tmp_path / "adapted")

    manifest = json.loads((out / "manifest.json").read_text())
    assert manifest["settings"]["model"] == ADAPTED_MODEL
    assert manifest["adaptation"]["base_weights_sha256"] == base.weights_sha256
    assert manifest["adaptation"]["report"]["after"] == 0.75
    assert "encoder/model.safetensors" in manifest["files"]
    assert manifest["encoder"]["model_name"].endswith("(adapted)")

    question = "my parcel never showed up, what now?"
    expected = built.ask(question, k=3)
    loaded = FaqIndex.load(out)
    got = loaded.ask(question, k=3)  # loads encoder/ from the bundle by itself
    assert [m.entry.id for m in got] == [m.entry.id for m in expected]
    assert [m.score for m in got] == pytest.approx([m.score for m in expected], abs=1e-5)
    assert loaded.encoder.identity.weights_sha256 == built.identity.weights_sha256

    # The query side refuses the base model for an adapted bundle: the weights differ.
    with pytest.raises(Exception, match="weights"):
        FaqIndex.load(out, encoder=base)

    # Re-indexing keeps the adapted encoder unless a model is named.
    changed = [*entries[:-1], dataclasses.replace(entries[-1], answer=entries[-1].answer + " Thanks!")]
    again = update_bundle(out, changed)
    assert again.report is not None and again.report.encoded == 1
    assert json.loads((out / "manifest.json").read_text())["settings"]["model"] == ADAPTED_MODEL
    assert FaqIndex.load(out).ask(question, k=1)[0].entry.id == expected[0].entry.id
    assert FaqIndex.load(out).encoder.identity.weights_sha256 == built.identity.weights_sha256

    plain = update_bundle(out, changed, settings=EncoderSettings(), keep_adapted=False)
    assert plain.identity.weights_sha256 == base.weights_sha256
    data = json.loads((out / "manifest.json").read_text())
    assert data["settings"]["model"] == "default" and data["adaptation"] is None
    assert not (out / "encoder").exists()


@pytest.mark.model
def test_check_and_cli_cover_the_adapted_encoder(
    tmp_path: Path, sample_faq: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(adapt_module, "adapt", _fake_adapt)
    built, _ = adapt_index(read_faq(sample_faq))
    out = built.save(tmp_path / "adapted")

    checked = run("check", "--index", str(out), "--sample", "8")
    assert checked.returncode == 0, checked.stdout + checked.stderr
    info = run("info", "--index", str(out))
    assert "adapted" in info.stdout and "0.500 -> 0.750" in info.stdout
    asked = run("ask", "where is my parcel", "--index", str(out), "--json")
    assert asked.returncode == 0 and json.loads(asked.stdout)["matches"]
    calibrated = run("calibrate", str(sample_faq.parent / "queries.csv"), "--index", str(out))
    assert calibrated.returncode == 0, calibrated.stderr
    assert FaqIndex.load(out).encoder_files().keys() == built.encoder_files().keys()

    weights = out / "encoder" / "model.safetensors"
    data = bytearray(weights.read_bytes())
    data[len(data) // 2] ^= 0x01
    weights.write_bytes(bytes(data))
    with pytest.raises(BundleError, match=r"model\.safetensors"):
        FaqIndex.load(out)
    broken = run("ask", "where is my parcel", "--index", str(out))
    assert broken.returncode == 2 and "model.safetensors" in broken.stderr and "Traceback" not in broken.stderr


_FIXED_VECTORS = {
    "answer 0": [1.0, 0.0, 0.0],
    "answer 1": [0.0, 1.0, 0.0],
    "answer 2": [0.0, 0.0, 1.0],
    "question 0": [1.0, 0.1, 0.0],  # answer 0 first
    "question 1": [0.0, 0.5, 1.0],  # answer 2 first, its own answer 1 second
}


class _FixedEncoder:
    """Vectors by text: of two questions, one finds its answer first, the other second."""

    def encode(self, texts: list[str]) -> np.ndarray:
        return np.asarray([_FIXED_VECTORS[t] for t in texts], dtype=np.float32)


def test_the_guard_reports_mrr_and_its_standard_error() -> None:
    entries = [FaqEntry(id=str(n), answer=f"answer {n}", questions=(f"question {n}",)) for n in range(3)]
    held = [p for p in training_pairs(entries) if p.entry in (0, 1)]
    guard = adapt_module.HeldOutScorer(_FixedEncoder(), entries, held, 300, np.random.default_rng(0))  # type: ignore[arg-type]
    score, error = guard.measure()
    assert score == pytest.approx(0.75) and guard.score() == pytest.approx(0.75)
    assert error == pytest.approx(np.std([1.0, 0.5], ddof=1) / np.sqrt(2))
