"""Quality features with the real model: long answers, eval, calibrate and tune from the command line."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from faq_search.corpus import FaqEntry
from faq_search.encoding.encoder import BertEncoder
from faq_search.index.faq_index import FaqIndex
from faq_search.index.lexical import HybridSettings
from tests.cli.test_cli import one_line_error, run
from tests.conftest import DATA

pytestmark = pytest.mark.model

FILLER = (
    "Our loyalty programme has several tiers, and points are collected on every purchase made online or in "
    "one of our stores, except on gift cards and shipping fees. "
)


@pytest.mark.parametrize("weight", [0.0, 0.5])
def test_a_fact_at_the_end_of_a_long_answer_is_found(real_encoder: BertEncoder, weight: float) -> None:
    long_answer = FILLER * 25 + "Finally, the warehouse cat that guards our parcels is called Biscuit."
    entries = [
        FaqEntry("loyalty", long_answer),  # no question: only the answer can match
        FaqEntry("wrapping", "We gift-wrap any order for three euros.", ("Do you offer gift wrapping?",)),
        FaqEntry("opening", "Our stores open at nine and close at six.", ("When are you open?",)),
    ]
    question = "what is the warehouse cat called"
    index = FaqIndex.build(entries, encoder=real_encoder, hybrid=HybridSettings(weight=weight))
    rows_of_long = [f for e, f in zip(index.store.row_entry, index.store.row_field, strict=True) if e == 0]
    assert rows_of_long.count("answer") > 1  # windowed, not cut at the model's window
    top = index.ask(question, k=3)[0]
    assert (top.entry.id, top.field) == ("loyalty", "answer")
    # Proof that the windows did it: the answer cut to the model's window does not mention the cat at all.
    truncated = real_encoder.encode([long_answer])[0]
    assert top.cosine > float(real_encoder.encode([question])[0] @ truncated) + 0.1


@pytest.fixture(scope="module")
def sample_index(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("quality") / "idx"
    result = run("index", str(DATA / "faq.csv"), "--out", str(out), "--quiet")
    assert result.returncode == 0, result.stderr
    return out


def test_eval_json_and_plot(sample_index: Path, tmp_path: Path) -> None:
    plot = tmp_path / "plot.png"
    result = run(
        "eval", str(DATA / "queries.csv"), "--index", str(sample_index),
        "--negatives", str(DATA / "unanswerable.csv"), "--plot", str(plot), "--json",
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    data = json.loads(result.stdout)
    assert data["metrics"]["queries"] == 60
    assert data["metrics"]["mrr_at_10"] > 0.6  # measured 0.744 with the defaults
    assert data["negatives"] == 15
    assert data["thresholds"] and {"threshold", "precision", "coverage", "false_answer_rate"} <= set(
        data["thresholds"][0]
    )
    assert plot.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    table = run("eval", str(DATA / "queries.csv"), "--index", str(sample_index))
    assert "MRR@10" in table.stdout and "threshold  precision  coverage" in table.stdout


def test_eval_reports_bad_query_files(sample_index: Path, tmp_path: Path) -> None:
    bad = tmp_path / "q.csv"
    bad.write_text("query,relevant_ids\nwhere is my parcel,shipping-05|no-such-id\n", encoding="utf-8")
    one_line_error(run("eval", str(bad), "--index", str(sample_index)), "'no-such-id'", "not in the index")
    bad.write_text("text,ids\nx,y\n", encoding="utf-8")
    one_line_error(run("eval", str(bad), "--index", str(sample_index)), "no query column 'query'")


def test_calibrate_stores_a_threshold_that_ask_uses(sample_index: Path, tmp_path: Path) -> None:
    copy = tmp_path / "idx"
    assert run("index", str(DATA / "faq.csv"), "--out", str(copy), "--quiet").returncode == 0
    result = run(
        "calibrate", str(DATA / "queries.csv"), "--index", str(copy),
        "--negatives", str(DATA / "unanswerable.csv"), "--target-precision", "0.8", "--json",
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    chosen = json.loads(result.stdout)
    assert chosen["precision"] >= 0.8 and chosen["coverage"] > 0
    info = json.loads(run("info", "--index", str(copy), "--json").stdout)
    assert info["min_score"] == pytest.approx(chosen["threshold"], abs=1e-5)
    answered = json.loads(run("ask", "do you sell bicycles", "--index", str(copy), "--json").stdout)
    assert all(m["score"] >= info["min_score"] for m in answered["matches"])
    assert answered["min_score"] == info["min_score"]


def test_tune_reports_default_and_held_out_scores_and_writes_the_index(tmp_path: Path) -> None:
    out = tmp_path / "tuned"
    result = run(
        "tune", str(DATA / "queries.csv"), str(DATA / "faq.csv"), "--out", str(out),
        "--layer", "-2", "--layer", "-1", "--pooling", "mean", "--weight", "0", "--weight", "0.5",
        "--folds", "3", "--json",
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    data = json.loads(result.stdout)
    assert data["default"]["settings"] == "layer -2, mean, question+answer, hybrid on"
    assert 0 < data["tuned"]["cross_validated_mrr_at_10"] <= 1
    assert len(data["grid"]) == 2 * 1 * 2 * 2  # layers x poolings x fields x hybrid on/off
    best = data["grid"][0]["settings"]
    info = json.loads(run("info", "--index", str(out), "--json").stdout)
    layer = best.split(",")[0].removeprefix("layer ")
    assert info["settings"]["layer"] == layer
    assert info["entry_count"] == 48
