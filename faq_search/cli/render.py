"""Plain-text renderers for the commands' results: pure functions from library records to strings.

JSON output is each record's own ``to_dict()`` (or ``dataclasses.asdict``);
these render the tables and one-line summaries a person reads. They import
nothing heavy: the records are passed in.
"""

from __future__ import annotations

import shutil
import sys
import textwrap
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from faq_search.index.faq_index import BuildReport, Match
    from faq_search.index.verify import CheckReport
    from faq_search.quality.adapt import AdaptReport
    from faq_search.quality.evaluate import CalibrationReport, Metrics, ThresholdRow
    from faq_search.quality.tune import TuneReport


def update_dict(report: BuildReport | None) -> dict[str, Any] | None:
    """What an index run changed, for ``index --json``."""
    if report is None:
        return None
    return {
        **(report.changes.counts() if report.changes is not None else {}),
        "encoded": report.encoded,
        "reused": report.reused,
        "resumed": report.resumed,
        "note": report.reuse_note,
    }


def update_summary(report: BuildReport, min_score: float | None) -> str:
    """What an (incremental) index run changed and how much it had to embed."""
    work = f"encoded {report.encoded} texts, reused {report.reused} embeddings"
    if report.resumed:
        work += f", resumed {report.resumed} from an interrupted run"
    if report.changes is None:
        return f"New index: {work}."
    counts = report.changes.counts()
    kept = f"; kept min_score {min_score:g}" if min_score is not None else ""
    return (
        f"Changes: {counts['added']} added, {counts['changed']} changed, {counts['removed']} removed, "
        f"{counts['unchanged']} unchanged; {work}{kept}."
    )


def info_table(index_dir: Path, data: dict[str, Any]) -> str:
    """A manifest (as ``to_dict()``) as aligned ``name  value`` rows."""
    encoder, settings = data["encoder"], data["settings"]
    rows = [
        ("index", str(index_dir)),
        ("created", data["created"]),
        ("source", data["source"] or "-"),
        ("entries", data["entry_count"]),
        ("vectors", f"{data['vector_count']} ({'+'.join(data['fields'])})"),
        ("model", f"{encoder['model_name']} ({settings['model']})"),
        ("weights sha256", encoder["weights_sha256"][:16] + "..."),
        ("layer", settings["layer"]),
        ("pooling", f"{settings['pooling']} ({'with' if settings['include_special'] else 'without'} [CLS]/[SEP])"),
        ("max_seq_len", settings["max_seq_len"]),
        ("precision", f"{data['precision']} (setting: {settings['precision']})"),
        ("dimension", encoder["dimension"]),
        ("index type", data["index_type"]),
        ("hybrid", "BM25 evidence on" if data.get("hybrid") else "off (dense only)"),
        ("confidence", confidence_summary(data.get("confidence"))),
        ("min score", "-" if data["min_score"] is None else f"{data['min_score']} (confidence)"),
        ("adapted", adaptation_summary(data.get("adaptation"))),
        ("format", data["format_version"]),
    ]
    width = max(len(name) for name, _ in rows)
    return "\n".join(f"{name.ljust(width)}  {value}" for name, value in rows)


def confidence_summary(record: dict[str, Any] | None) -> str:
    """The confidence model a manifest records: the shipped one, or ``calibrate``'s."""
    if not record:
        return "shipped model"
    return f"calibrated ({record.get('fitted_on') or 'labelled questions'})"


def adaptation_summary(record: dict[str, Any] | None) -> str:
    if not record:
        return "no"
    report = record.get("report", {})
    verdict = "yes" if report.get("kept") else "no (the base encoder scored as well or better)"
    return (
        f"{verdict}; from {record.get('base_model')}, held-out MRR@10 "
        f"{report.get('before', float('nan')):.3f} -> {report.get('after', float('nan')):.3f}"
    )


def check_table(index_dir: Path, report: CheckReport) -> str:
    width = max(len(f.name) for f in report.findings)
    lines = [f"{'ok  ' if f.ok else 'FAIL'}  {f.name.ljust(width)}  {f.detail}" for f in report.findings]
    lines.append(f"{index_dir}: {'OK' if report.ok else 'PROBLEMS FOUND'}")
    return "\n".join(lines)


def matches_list(matches: Sequence[Match]) -> str:
    """A readable ranked list: rank, confidence, id, field and cosine, then the question and the wrapped answer."""
    width = max(40, min(shutil.get_terminal_size((100, 20)).columns, 120)) - 7
    blocks = []
    for match in matches:
        lines = [
            f"{match.rank:>2}. confidence {match.score:.3f}  {match.entry.id}  "
            f"(matched {match.field}, cosine {match.cosine:.3f})"
        ]
        if match.entry.question:
            lines += textwrap.wrap(
                "Q: " + match.entry.question, width, initial_indent="    ", subsequent_indent="       "
            )
        lines += textwrap.wrap(
            "A: " + match.entry.answer,
            width,
            initial_indent="    ",
            subsequent_indent="       ",
            max_lines=6,
            placeholder=" ...",
        )
        blocks.append("\n".join(lines))
    return "\n\n".join(blocks)


def metrics_line(metrics: Metrics) -> str:
    return (
        f"queries {metrics.queries}  MRR@10 {metrics.mrr_at_10:.3f}  R@1 {metrics.recall_at_1:.3f}  "
        f"R@5 {metrics.recall_at_5:.3f}  R@10 {metrics.recall_at_10:.3f}  nDCG@10 {metrics.ndcg_at_10:.3f}"
    )


def threshold_table(rows: Sequence[ThresholdRow], negatives: int) -> str:
    lines = ["threshold  precision  coverage" + ("  false answers" if negatives else "")]
    for row in rows:
        line = f"{row.threshold:9.3f}  {row.precision:9.3f}  {row.coverage:8.3f}"
        if negatives:
            line += f"  {row.false_answer_rate:13.3f}"
        lines.append(line)
    return "\n".join(lines)


def calibration_summary(index_dir: Path, report: CalibrationReport) -> str:
    """What ``calibrate`` stored, and how it held up on held-out questions."""
    negatives = f" and {report.negatives} negatives" if report.negatives else ""
    return (
        f"confidence model refitted on {report.queries} labelled questions{negatives}; "
        f"min_score {report.threshold:.4f} -> stored in {index_dir}\n"
        f"held out (5 folds): precision {report.precision:.3f}, coverage {report.coverage:.3f}, "
        f"calibration error {report.ece:.3f} (the model before: {report.ece_before:.3f})"
    )


def tune_dict(report: TuneReport, out: Path) -> dict[str, Any]:
    return {
        "default": {"settings": report.default.candidate.label(), "mrr_at_10": report.default_mrr},
        "tuned": {"settings": report.best.label(), "cross_validated_mrr_at_10": report.cross_validated_mrr},
        "grid": [{"settings": r.candidate.label(), "mrr_at_10": r.mrr_at_10} for r in report.results],
        "index": str(out),
    }


def tune_table(report: TuneReport, queries: int, top: int, out: Path) -> str:
    width = max(len(r.candidate.label()) for r in report.results)
    lines = [f"{'settings'.ljust(width)}  MRR@10 (all {queries} queries)"]
    lines += [f"{r.candidate.label().ljust(width)}  {r.mrr_at_10:.3f}" for r in report.results[:top]]
    lines += [
        "",
        f"default: {report.default.candidate.label()}: MRR@10 {report.default_mrr:.3f}",
        f"tuned:   {report.best.label()}: MRR@10 {report.cross_validated_mrr:.3f} "
        f"(settings chosen on {report.folds - 1} of {report.folds} folds, scored on the held-out fold)",
        f"index written with the tuned settings -> {out}",
    ]
    return "\n".join(lines)


def adapt_line(report: AdaptReport, out: Path) -> str:
    verdict = (
        "kept the adapted encoder"
        if report.kept
        else "kept the base encoder: adaptation did not improve the held-out score"
    )
    return (
        f"Adapted on {report.pairs} pairs in {report.seconds:.0f} s ({report.steps} steps, {report.stopped}); "
        f"held-out MRR@10 on {report.held_out_questions} questions: {report.before:.3f} -> {report.after:.3f}; "
        f"{verdict}. Index -> {out}"
    )


@contextmanager
def loss_bar(enabled: bool) -> Iterator[Any]:
    """A progress bar showing the training loss, on a terminal; no callback (None) otherwise."""
    if not enabled or not sys.stderr.isatty():
        yield None
        return
    from tqdm import tqdm

    bar = tqdm(unit="step", desc="adapting", file=sys.stderr, leave=False)

    def update(step: int, total: int, loss: float) -> None:
        bar.total = total
        bar.n = step
        bar.set_postfix(loss=f"{loss:.3f}")

    try:
        yield update
    finally:
        bar.close()
