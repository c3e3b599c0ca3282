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
from faq_search.encoding.settings import ADAPTED_MODEL, EncoderSettings, Fields
from faq_search.errors import BundleError, InputError
from faq_search.index.faq_index import FaqIndex
from faq_search.index.lexical import HybridSettings
from faq_search.index.update import update_bundle
from faq_search.quality import adapt as adapt_module
from faq_search.quality import adapt_guard as guard
from faq_search.quality import adapt_train
from faq_search.quality.adapt import AdaptReport, AdaptSettings, adapt, adapt_index, training_pairs
from faq_search.quality.queries import LabelledQuery
from tests.conftest import FakeEncoder

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
    with pytest.raises(InputError, match="at least 2 folds"):
        AdaptSettings(folds=1)
    with pytest.raises(InputError, match="--max-steps"):
        AdaptSettings(max_steps=0)


@pytest.mark.parametrize(
    ("count", "sizes"),
    [(700, [70]), (300, [50]), (200, [50]), (199, [100, 99]), (48, [24, 24]), (5, [3, 2])],
)
def test_a_large_faq_holds_out_one_slice_of_at_least_50_a_small_one_rotates_folds(count: int, sizes: list[int]) -> None:
    questions = [f"question {n}" for n in range(count)]
    folds = guard.held_out_folds(questions, 0.1, 50, 2, np.random.default_rng(0))
    assert [len(fold) for fold in folds] == sizes
    held = [q for fold in folds for q in fold]
    assert len(set(held)) == len(held)  # no question held out twice
    if len(folds) > 1:
        assert sorted(held) == sorted(questions)  # every question held out once
    again = guard.held_out_folds(questions, 0.1, 50, 2, np.random.default_rng(0))
    other = guard.held_out_folds(questions, 0.1, 50, 2, np.random.default_rng(1))
    assert again == folds != other  # drawn by the seed


def test_held_out_questions_leave_their_entries_and_keep_every_relevant_id() -> None:
    entries = [*ENTRIES, FaqEntry(id="d", answer="Parcels travel by courier.", questions=("When will it ship?",))]
    pairs = training_pairs(entries, [LabelledQuery(query="forgot my password", relevant=frozenset({"c"}))])
    held = ["When will it ship?", "forgot my password"]
    asked = guard.held_out_queries(entries, pairs, held)
    assert asked == [
        LabelledQuery(query="When will it ship?", relevant=frozenset({"b", "d"})),
        LabelledQuery(query="forgot my password", relevant=frozenset({"c"})),
    ]
    served = guard.without_questions(entries, held)
    assert [e.questions for e in served] == [("When do I get my money back?",), ("Shipping?",), (), ()]
    assert [e.answer for e in served] == [e.answer for e in entries]


def test_the_guard_scores_the_served_ranking_and_a_question_cannot_find_itself(fake_encoder: FakeEncoder) -> None:
    entries = [
        FaqEntry(id="x", answer="alpha beta", questions=("gamma delta",)),
        FaqEntry(id="y", answer="gamma delta epsilon", questions=("zeta",)),
    ]
    asked = [LabelledQuery(query="gamma delta", relevant=frozenset({"x"}))]
    dense = HybridSettings(weight=0.0)
    with_question = guard.served_reciprocal_ranks(fake_encoder, entries, asked, Fields.QUESTION_ANSWER, dense)
    assert with_question.tolist() == [1.0]  # the question itself is indexed: it matches exactly
    served = guard.without_questions(entries, ["gamma delta"])
    held_out = guard.served_reciprocal_ranks(fake_encoder, served, asked, Fields.QUESTION_ANSWER, dense)
    assert held_out.tolist() == [0.5]  # now entry y's answer, which shares its words, ranks first
    fused = guard.served_reciprocal_ranks(fake_encoder, served, asked, Fields.QUESTION_ANSWER, HybridSettings())
    index = FaqIndex.build(served, encoder=fake_encoder, hybrid=HybridSettings())
    ranked = [m.entry.id for m in index.ask("gamma delta", k=10, min_score=-np.inf)]
    assert fused.tolist() == [1.0 / (ranked.index("x") + 1)]  # the same ranking ask serves


def test_the_guard_keeps_only_a_gain_larger_than_its_paired_standard_error() -> None:
    before = np.array([0.5, 0.5, 1.0, 0.0])
    clear = guard.guard_result(before, np.array([1.0, 1.0, 1.0, 0.5]), folds=1)
    assert clear.gain == pytest.approx(0.375) and clear.after == pytest.approx(0.875)
    assert clear.gain_error == pytest.approx(np.std([0.5, 0.5, 0.0, 0.5], ddof=1) / 2)
    assert clear.before_error == pytest.approx(np.std(before, ddof=1) / 2)
    assert clear.improved
    noisy = guard.guard_result(before, np.array([1.0, 0.0, 1.0, 0.0]), folds=2)
    assert noisy.gain == 0.0 and not noisy.improved
    lucky = guard.guard_result(before, np.array([1.0, 0.5, 1.0, 0.0]), folds=2)
    assert lucky.gain > 0 and lucky.gain <= lucky.gain_error and not lucky.improved


def _state(encoder: BertEncoder) -> dict[str, torch.Tensor]:
    return {k: v.detach().clone() for k, v in encoder.model.state_dict().items()}


@pytest.mark.model
def test_the_guard_keeps_the_base_weights_when_training_hurts(sample_faq: Path) -> None:
    encoder = BertEncoder(EncoderSettings())
    before = _state(encoder)
    probe = encoder.encode(["where is my parcel"])
    # A learning rate this large wrecks the model within a step or two: the guard must refuse it.
    wrecking = AdaptSettings(max_pairs=16, batch_size=8, learning_rate=0.5, max_steps=3, seed=1)
    report = adapt(encoder, read_faq(sample_faq), wrecking)
    assert report.steps >= 1 and report.folds == 2 and report.held_out_questions == 48
    assert report.kept is False and report.gain <= report.gain_error
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
        loss = adapt_train._loss(encoder, batch, settings)
        loss.backward()
        optimizer.step()
        encoder.model.eval()
        states.append(_state(encoder))
        assert any(not torch.equal(before[n], states[-1][n]) for n in before), "training changed nothing"
    assert all(torch.equal(states[0][name], states[1][name]) for name in states[0])

    encoders = [BertEncoder(EncoderSettings()) for _ in range(2)]
    reports = [adapt(encoder, entries, settings) for encoder in encoders]
    fields = ("pairs", "held_out_questions", "folds", "steps", "before", "after", "gain", "kept", "stopped")
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
        pairs=3, held_out_questions=1, folds=1, steps=1, seconds=0.1, before=0.5, before_error=0.1, after=0.75,
        after_error=0.1, gain_error=0.05, kept=True, stopped="schedule", peak_memory_mb=1.0,
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


@pytest.mark.model
def test_the_real_training_runs_end_to_end_through_the_cli(tmp_path: Path, sample_faq: Path) -> None:
    faq = tmp_path / "tiny.csv"
    faq.write_text("".join(sample_faq.read_text(encoding="utf-8").splitlines(keepends=True)[:17]), encoding="utf-8")
    out = tmp_path / "adapted"
    result = run("adapt", str(faq), "--out", str(out), "--max-steps", "2", "--seed", "3", "--json")
    assert result.returncode == 0, result.stderr
    report = json.loads(result.stdout)
    # 16 questions: too few for one held-out slice of 50, so 2 folds hold every question out once.
    assert report["held_out_questions"] == 16 and report["folds"] == 2
    assert report["steps"] == 2 * (3 if report["kept"] else 2)  # one run per fold, then the kept run on all pairs
    assert report["pairs"] == (16 if report["kept"] else 8)
    for name in ("before", "after"):
        assert 0.0 < report[name] <= 1.0 and report[f"{name}_error"] >= 0.0
    assert report["gain"] == pytest.approx(report["after"] - report["before"])
    assert report["kept"] == (report["gain"] > 0 and report["gain"] > report["gain_error"])
    assert report["peak_memory_mb"] > 100

    manifest = json.loads((out / "manifest.json").read_text())
    assert {k: manifest["adaptation"]["report"][k] for k in ("before", "after", "kept")} == {
        k: report[k] for k in ("before", "after", "kept")
    }
    assert manifest["settings"]["model"] == (ADAPTED_MODEL if report["kept"] else "default")
    loaded = FaqIndex.load(out)
    matches = loaded.ask("How can I cancel my order?", k=3)
    assert matches and matches[0].entry.id == "orders-03"
    assert loaded.is_adapted == report["kept"]


@pytest.mark.model
def test_gradient_caching_gives_the_one_graph_gradients(sample_faq: Path) -> None:
    encoder = BertEncoder(EncoderSettings(precision="fp32"))
    encoder.model.eval()  # no dropout: both ways see the same network
    for parameter in encoder.model.parameters():
        parameter.requires_grad_(True)
    batch = training_pairs(read_faq(sample_faq))[:6]
    settings = AdaptSettings(micro_batch=4)  # 6 texts: chunks of 4 and 2
    adapt_train._loss(encoder, batch, settings).backward()
    whole = {name: p.grad.clone() for name, p in encoder.model.named_parameters() if p.grad is not None}
    encoder.model.zero_grad(set_to_none=True)
    loss = adapt_train._backward(encoder, batch, settings)
    assert loss == pytest.approx(float(adapt_train._loss(encoder, batch, settings).detach()), rel=1e-5)
    chunked = {name: p.grad for name, p in encoder.model.named_parameters() if p.grad is not None}
    assert whole.keys() == chunked.keys() and len(whole) > 10
    for name, grad in whole.items():
        torch.testing.assert_close(chunked[name], grad, rtol=1e-3, atol=1e-6, msg=name)
