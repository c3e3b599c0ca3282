"""eval, calibrate, tune and adapt hand their options to one library call and render its result.

The library functions are replaced by recorders here (the real runs are in
tests/quality/test_quality_model.py and test_adapt.py), so these tests are
fast and check exactly what the CLI passes on and prints.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner

from faq_search.cli import app
from faq_search.encoding.runtime import Runtime, batch_runtime
from faq_search.encoding.settings import Fields, Pooling
from faq_search.errors import InputError
from faq_search.quality import adapt as adapt_module
from faq_search.quality import evaluate as evaluate_module
from faq_search.quality import tune as tune_module
from faq_search.quality.adapt import AdaptReport
from faq_search.quality.evaluate import CalibrationReport, Evaluation, Metrics, ThresholdRow
from faq_search.quality.queries import QueryFiles
from faq_search.quality.tune import Candidate, CandidateResult, TuneReport
from tests.conftest import DATA

EVIDENCE = Evaluation(Metrics(3, 0.5, 0.25, 0.75, 1.0, 0.6), (0.9, 0.7, 0.4), (True, False, True), (0.8,))
ROWS = [ThresholdRow(0.5, 0.75, 0.5, 0.25)]
REPORT = CalibrationReport(0.625, 0.9, 0.7, 0.05, 0.12, 40, 5)


class Saved:
    """Stands in for a built FaqIndex: records where it was saved."""

    def __init__(self) -> None:
        self.saved_to: list[Path] = []

    def save(self, path: Path) -> Path:
        self.saved_to.append(path)
        return path


def invoke(*args: str) -> Any:
    return CliRunner().invoke(app, list(args))


def test_eval_passes_the_query_files_and_renders_metrics_and_thresholds(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    calls: list[tuple[Any, ...]] = []

    def fake(
        index_dir: Path, files: QueryFiles, *, plot: Path | None = None, runtime: Runtime | None = None
    ) -> tuple[Evaluation, list[ThresholdRow]]:
        calls.append((index_dir, files, plot, runtime))
        return EVIDENCE, ROWS

    monkeypatch.setattr(evaluate_module, "evaluate_index", fake)
    queries, negatives = DATA / "queries.csv", DATA / "unanswerable.csv"
    result = invoke(
        "eval", str(queries), "--index", str(tmp_path), "--negatives", str(negatives), "--query-column", "q"
    )
    assert result.exit_code == 0, result.output
    assert calls == [(tmp_path, QueryFiles(queries, negatives, query_column="q"), None, batch_runtime(None))]
    assert "MRR@10 0.500" in result.output and "nDCG@10 0.600" in result.output
    assert "threshold  precision  coverage  false answers" in result.output

    data = json.loads(invoke("eval", str(queries), "--index", str(tmp_path), "--json").output)
    assert data["metrics"]["recall_at_5"] == 0.75 and data["negatives"] == 1
    assert data["thresholds"] == [{"threshold": 0.5, "precision": 0.75, "coverage": 0.5, "false_answer_rate": 0.25}]


def test_calibrate_passes_the_target_and_reports_the_stored_threshold(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    calls: list[tuple[Any, ...]] = []

    def fake(index_dir: Path, files: QueryFiles, target: float, *, plot: Path | None = None) -> CalibrationReport:
        calls.append((index_dir, files, target, plot))
        return REPORT

    monkeypatch.setattr(evaluate_module, "calibrate_index", fake)
    queries, negatives, plot = DATA / "queries.csv", DATA / "unanswerable.csv", tmp_path / "r.png"
    result = invoke(
        "calibrate", str(queries), "--index", str(tmp_path), "--target-precision", "0.8",
        "--negatives", str(negatives), "--plot", str(plot),
    )  # fmt: skip
    assert result.exit_code == 0, result.output
    assert calls == [(tmp_path, QueryFiles(queries, negatives), 0.8, plot)]
    assert "refitted on 40 labelled questions and 5 negatives; min_score 0.6250" in result.output
    assert "precision 0.900, coverage 0.700, calibration error 0.050 (the model before: 0.120)" in result.output
    assert f"plot written to {plot}" in result.output
    data = json.loads(invoke("calibrate", str(queries), "--index", str(tmp_path), "--json").output)
    assert data == {"index": str(tmp_path), "threshold": 0.625, "precision": 0.9, "coverage": 0.7, "ece": 0.05,
                    "ece_before": 0.12, "queries": 40, "negatives": 5}  # fmt: skip


def test_a_library_error_is_one_line_and_its_exit_code(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    def fake(*args: Any, **kwargs: Any) -> Any:
        raise InputError("no threshold reaches precision 0.90; lower --target-precision")

    monkeypatch.setattr(evaluate_module, "calibrate_index", fake)
    result = invoke("calibrate", str(DATA / "queries.csv"), "--index", str(tmp_path))
    assert result.exit_code == InputError.exit_code
    assert result.output.strip() == "faq-search: error: no threshold reaches precision 0.90; lower --target-precision"


def test_tune_passes_the_grid_and_saves_the_winner(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    built, calls = Saved(), []
    best = Candidate("-1", Pooling.MAX, Fields.ANSWER, 0.25)
    default = CandidateResult(Candidate("-2", Pooling.MEAN, Fields.QUESTION_ANSWER, 0.5), 0.6)
    report = TuneReport((CandidateResult(best, 0.8), default), default, best, 0.7, 0.6, (best, best), 2)

    def fake(entries: Any, queries: Any, **options: Any) -> tuple[Saved, TuneReport]:
        calls.append((len(entries), len(queries), options))
        return built, report

    monkeypatch.setattr(tune_module, "tune_index", fake)
    out = tmp_path / "tuned"
    result = invoke(
        "tune", str(DATA / "queries.csv"), str(DATA / "faq.csv"), "--out", str(out), "--layer", "-1",
        "--pooling", "max", "--fields", "answer", "--weight", "0.25", "--folds", "2", "--seed", "3", "--json",
    )  # fmt: skip
    assert result.exit_code == 0, result.output
    ((entries, queries, options),) = calls
    assert (entries, queries) == (48, 60)
    assert options["layers"] == ["-1"] and options["poolings"] == [Pooling.MAX]
    assert options["fields"] == [Fields.ANSWER] and options["weights"] == [0.25]
    assert (options["folds"], options["seed"], options["source"], options["on_step"]) == (2, 3, "faq.csv", None)
    assert built.saved_to == [out]
    data = json.loads(result.output)
    assert data["tuned"] == {"settings": "layer -1, max, answer, hybrid on", "cross_validated_mrr_at_10": 0.7}
    assert data["default"]["mrr_at_10"] == 0.6 and len(data["grid"]) == 2 and data["index"] == str(out)

    table = invoke("tune", str(DATA / "queries.csv"), str(DATA / "faq.csv"), "--out", str(out), "--top", "1", "-q")
    grid = table.output.split("\n\n")[0].splitlines()
    assert grid[0].endswith("MRR@10 (all 60 queries)") and len(grid) == 2 and grid[1].startswith("layer -1, max")
    assert "settings chosen on 1 of 2 folds" in table.output


def test_adapt_passes_its_settings_and_saves_the_index(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    built, calls = Saved(), []
    report = AdaptReport(pairs=40, held_out_questions=5, steps=12, seconds=3.0, before=0.5, after=0.6, kept=True,
                         stopped="epochs", peak_memory_mb=100.0)  # fmt: skip

    def fake(entries: Any, **options: Any) -> tuple[Saved, AdaptReport]:
        calls.append((len(entries), options))
        return built, report

    monkeypatch.setattr(adapt_module, "adapt_index", fake)
    out = tmp_path / "adapted"
    result = invoke(
        "adapt", str(DATA / "faq.csv"), "--out", str(out), "--epochs", "2", "--seed", "4", "--layer", "-1",
        "--hybrid-weight", "0", "--queries", str(DATA / "queries.csv"), "--quiet",
    )  # fmt: skip
    assert result.exit_code == 0, result.output
    ((entries, options),) = calls
    assert entries == 48 and len(options["queries"]) == 60 and options["source"] == "faq.csv"
    assert options["settings"].layer == "-1" and options["hybrid"].weight == 0
    assert options["adapt_settings"].epochs == 2 and options["adapt_settings"].seed == 4
    assert built.saved_to == [out]
    assert "held-out MRR@10 on 5 questions: 0.500 -> 0.600; kept the adapted encoder" in result.output


def test_embed_no_longer_takes_a_hybrid_weight() -> None:
    result = invoke("embed", "hello", "--hybrid-weight", "0.5")
    assert result.exit_code == 2 and "--hybrid-weight" in result.output


def test_help_says_what_min_score_and_max_seq_len_do() -> None:
    ask_help = " ".join(invoke("ask", "--help").output.replace("│", " ").split())
    assert "threshold" in ask_help and "cosine" not in ask_help
    index_help = " ".join(invoke("index", "--help").output.replace("│", " ").split())
    assert "overlapping windows" in index_help and "cut" not in index_help
