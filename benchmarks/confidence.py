"""Match confidence (faq_search/index/confidence.py) on the shared sets: transfer, calibration, ranking, size.

Prints, for the default encoder on stackfaq and covidfaq_jhu:

1. ranking: MRR@10 of today's fusion (z-score over all entries) and of the
   per-question fusion ``cosine + w * lexical_share`` over the dense top-100,
   for a few weights (the shipped weight is ``FUSION_WEIGHT``);
2. transfer: the model fitted on one set (the shipped recipe: each question's
   top match, the other set's questions as out-of-scope negatives), measured
   on the other: expected calibration error (10 bins) of the top-1
   confidence, and precision and coverage at the threshold that gives 90%
   precision on the fitting set; the version-1 recipe beside it;
3. calibrate as a user would run it (``faq_search.quality.calibration``):
   5-fold cross-validation over groups of questions that share their answer,
   threshold chosen on inner out-of-fold confidences, precision/coverage/ECE
   pooled over the held-out folds;
4. size: each set alone and grown about 20 times with unrelated entries (see
   benchmarks/confidence_data.py): the confidence shift of each question's
   fixed top entry, and precision/coverage at one fixed threshold, for the
   shipped model and the version-1 one, next to today's fused score;
5. the sample FAQ (data/faq.csv): the confidence of two questions, one it
   cannot answer ("do you sell bicycles").

Run through benchmarks/quality.py (the one quality script), whose
``--write-default`` refits the shipped model on both sets and writes
faq_search/index/confidence_default.json:

    python benchmarks/quality.py [--data ../shared/data] [--cache /tmp/faq-conf-cache] [--write-default]
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from confidence_data import SETS, Evidence, collect

from faq_search.index import confidence
from faq_search.index.confidence import ConfidenceModel, expected_calibration_error
from faq_search.index.lexical import fuse as fuse_all_entries
from faq_search.quality.calibration import calibrate, lowest_threshold

TARGET = 0.9
SAMPLE = Path(__file__).resolve().parent.parent / "data" / "faq.csv"
SAMPLE_QUESTIONS = ("do you sell bicycles", "my parcel never arrived, what can I do")
V1_SHIPPED = ConfidenceModel((11.767732869472441, 8.793798604773984), -10.44468573342634, fitted_on="version 1")
"""The former shipped model (fused, runner-up margin; fitted without negatives), the reference of the size check."""


@dataclass(frozen=True)
class Recipe:
    """How a model is fitted: its version (features), matches per question, L2, and the weight of negatives."""

    version: int
    depth: int
    l2: float
    negative_share: float  # negatives' total weight over the questions' (0: none)

    def rows(
        self, evidence: Evidence, pool: np.ndarray, bm25: np.ndarray, cosine: np.ndarray, weight: float
    ) -> np.ndarray:
        groups = evidence.groups[pool] if self.version >= 2 else None
        return confidence.features(cosine, bm25, weight, groups)[:, : 3 if self.version >= 2 else 2]


SHIPPED = Recipe(confidence.MODEL_VERSION, 1, confidence.FIT_L2, 0.2)
"""The shipped model's recipe (measured on both sets: top-1 matches transfer better than the top two; negatives
at 0.2 of the questions' weight keep the false-answer rate on the other set's questions at version 1's)."""
V1 = Recipe(1, 2, 1.0, 0.0)


@dataclass
class Ranked:
    """One question's candidates in ranking order, their features, and which are right."""

    entries: np.ndarray
    rows: np.ndarray  # features, same order
    right: np.ndarray


def rank(evidence: Evidence, weight: float, recipe: Recipe = SHIPPED) -> list[Ranked]:
    out = []
    for q in range(len(evidence.relevant)):
        pool, own_bm25 = evidence.pools[q]
        rows = recipe.rows(evidence, pool, own_bm25, evidence.cosine[q, pool], weight)
        order = np.lexsort((np.arange(len(rows)), -rows[:, 0]))
        entries = pool[order]
        out.append(Ranked(entries, rows[order], np.array([e in evidence.relevant[q] for e in entries])))
    return out


def negative_rows(evidence: Evidence, weight: float, recipe: Recipe = SHIPPED) -> np.ndarray:
    """The top match of each of the other set's questions on this set (all wrong: out of scope)."""
    out = []
    for pool, bm25, cosine in evidence.negatives or []:
        rows = recipe.rows(evidence, pool, bm25, cosine, weight)
        out.append(rows[np.lexsort((np.arange(len(rows)), -rows[:, 0]))[0]])
    return np.array(out)


def mrr(ranked_entries: Sequence[np.ndarray], relevant: Sequence[set[int]]) -> float:
    total = 0.0
    for entries, wanted in zip(ranked_entries, relevant, strict=True):
        total += next((1.0 / (i + 1) for i, e in enumerate(entries[:10].tolist()) if e in wanted), 0.0)
    return total / len(relevant)


def today(evidence: Evidence, weight: float = 0.5) -> tuple[list[np.ndarray], np.ndarray, np.ndarray]:
    """Today's flat ranking, top-1 scores and correctness: ``cos + w * std(cos) * z(bm25)`` over all entries."""
    fused = fuse_all_entries(evidence.cosine, evidence.lexical, weight)
    order = np.argsort(-fused, axis=1, kind="stable")[:, :10]
    top = order[:, 0]
    right = np.array([t in r for t, r in zip(top.tolist(), evidence.relevant, strict=True)])
    return list(order), fused[np.arange(len(top)), top], right


def top1(model: ConfidenceModel, ranked: Sequence[Ranked]) -> tuple[np.ndarray, np.ndarray]:
    return model.predict(np.vstack([r.rows[:1] for r in ranked])), np.array([bool(r.right[0]) for r in ranked])


def threshold_for(conf: np.ndarray, right: np.ndarray, target: float = TARGET) -> float:
    return lowest_threshold(conf, right, target)


def at(conf: np.ndarray, right: np.ndarray, threshold: float) -> tuple[float, float]:
    answered = conf >= threshold
    precision = float(right[answered].mean()) if answered.any() else 1.0
    return precision, float(answered.mean())


def groups_of(evidence: Evidence) -> np.ndarray:
    """Questions that share their relevant answers form one group; folds never split a group."""
    keys: dict[frozenset[int], int] = {}
    return np.array([keys.setdefault(frozenset(r), len(keys)) for r in evidence.relevant])


def fit(data: dict[str, dict[str, Evidence]], names: Sequence[str], weight: float, recipe: Recipe) -> ConfidenceModel:
    """``recipe`` on the sets ``names``, each weighted to count equally (covidfaq_jhu has fewer questions)."""
    rows, labels, weights = [], [], []
    biggest = max(len(data[n]["alone"].relevant) for n in names)
    for name in names:
        ranked = rank(data[name]["alone"], weight, recipe)
        share = biggest / len(ranked)
        rows += [r.rows[: recipe.depth] for r in ranked]
        labels += [r.right[: recipe.depth] for r in ranked]
        weights += [np.full(len(r.right[: recipe.depth]), share) for r in ranked]
        negatives = negative_rows(data[name]["alone"], weight, recipe) if recipe.negative_share else np.zeros((0, 1))
        if len(negatives):
            rows.append(negatives)
            labels.append(np.zeros(len(negatives), dtype=bool))
            weights.append(np.full(len(negatives), recipe.negative_share * share * len(ranked) / len(negatives)))
    return ConfidenceModel.fit(
        np.vstack(rows),
        np.concatenate(labels),
        l2=recipe.l2,
        sample_weight=np.concatenate(weights),
        fusion_weight=weight,
        fitted_on="+".join(names),
    )


def section_ranking(data: dict[str, dict[str, Evidence]], weights: Sequence[float]) -> None:
    print("## ranking: MRR@10 over each set alone (dense top-100 candidates for the new fusion)")
    for name, variants in data.items():
        ev = variants["alone"]
        cells = [f"today {mrr(today(ev)[0], ev.relevant):.3f}"]
        cells += [f"w={w:g} {mrr([r.entries for r in rank(ev, w)], ev.relevant):.3f}" for w in weights]
        print(f"  {name}: " + "  ".join(cells))


def section_transfer(data: dict[str, dict[str, Evidence]], weight: float) -> None:
    print("\n## transfer: fitted on one set (negatives: the other set's questions), measured on the other's top-1")
    for label, recipe in (("shipped recipe", SHIPPED), ("version 1", V1)):
        for source, target in (SETS, SETS[::-1]):
            fit_ranked = rank(data[source]["alone"], weight, recipe)
            model = fit(data, [source], weight, recipe)
            threshold = threshold_for(*top1(model, fit_ranked))
            conf, right = top1(model, rank(data[target]["alone"], weight, recipe))
            precision, coverage = at(conf, right, threshold)
            print(
                f"  {label}: {source} -> {target}: ECE {expected_calibration_error(conf, right):.3f}  "
                f"mean confidence {conf.mean():.3f} vs top-1 accuracy {right.mean():.3f}  "
                f"threshold {threshold:.3f} (90% on {source}): precision {precision:.3f}, coverage {coverage:.3f}"
            )


def section_calibrate(data: dict[str, dict[str, Evidence]], weight: float) -> None:
    print(
        "\n## calibrate on the set itself: 5-fold CV over answer groups (threshold nested), target precision 0.90, "
        "starting from the model fitted on the other set"
    )
    for name, variants in data.items():
        ev = variants["alone"]
        ranked = rank(ev, weight)
        prior = fit(data, [next(s for s in SETS if s != name)], weight, SHIPPED)  # never saw this set's labels
        result = calibrate([(r.rows, r.right) for r in ranked], groups_of(ev).tolist(), TARGET, prior=prior)
        print(
            f"  {name}: held-out precision {result.precision:.3f}, coverage {result.coverage:.3f}, "
            f"ECE {result.ece:.3f}; threshold of the final fit {result.threshold:.3f}"
        )


def section_size(data: dict[str, dict[str, Evidence]], model: ConfidenceModel) -> None:
    print("\n## size: each set alone vs grown ~20x with unrelated entries (fixed threshold)")
    for name, variants in data.items():
        alone, grown = variants["alone"], variants["grown"]
        for label, scorer, recipe in (("shipped", model, SHIPPED), ("version 1", V1_SHIPPED, V1)):
            ranked_alone = rank(alone, scorer.fusion_weight, recipe)
            ranked_grown = rank(grown, scorer.fusion_weight, recipe)
            shifts, dropped = [], 0
            for before, after in zip(ranked_alone, ranked_grown, strict=True):
                where = np.flatnonzero(after.entries == before.entries[0])
                if not len(where):
                    dropped += 1
                    continue
                moved = scorer.predict(after.rows[where[:1]])[0] - scorer.predict(before.rows[:1])[0]
                shifts.append(abs(float(moved)))
            shift = np.array(shifts)
            conf_a, right_a = top1(scorer, ranked_alone)
            conf_g, right_g = top1(scorer, ranked_grown)
            threshold = threshold_for(conf_a, right_a)
            pa, ca = at(conf_a, right_a, threshold)
            pg, cg = at(conf_g, right_g, threshold)
            print(
                f"  {name}, {label}: {alone.entries} -> {grown.entries} entries; confidence shift of each "
                f"question's top entry: mean {shift.mean():.4f}, p95 {np.quantile(shift, 0.95):.4f}, "
                f"max {shift.max():.4f}, share > 0.05 {(shift > 0.05).mean():.3f} ({dropped} left the top-100)"
            )
            print(
                f"    threshold {threshold:.3f}: precision {pa:.3f} -> {pg:.3f}, coverage {ca:.3f} -> {cg:.3f}; "
                f"MRR@10 {mrr([r.entries for r in ranked_alone], alone.relevant):.3f} -> "
                f"{mrr([r.entries for r in ranked_grown], grown.relevant):.3f}; "
                f"ECE {expected_calibration_error(conf_a, right_a):.3f} -> "
                f"{expected_calibration_error(conf_g, right_g):.3f}"
            )
        order_a, score_a, right_ta = today(alone)
        order_g, score_g, right_tg = today(grown)
        old_threshold = threshold_for(score_a, right_ta)
        pa, ca = at(score_a, right_ta, old_threshold)
        pg, cg = at(score_g, right_tg, old_threshold)
        print(
            f"  {name}, former fused score: threshold {old_threshold:.3f}: precision {pa:.3f} -> {pg:.3f}, "
            f"coverage {ca:.3f} -> {cg:.3f}; MRR@10 {mrr(order_a, alone.relevant):.3f} -> "
            f"{mrr(order_g, grown.relevant):.3f}; "
            f"top-1 score median {np.median(score_a):.2f} -> {np.median(score_g):.2f}"
        )


def section_sample(model: ConfidenceModel) -> None:
    """The sample FAQ's top match for a question it answers and one it cannot, as ``ask`` scores it."""
    from faq_search.index.faq_index import FaqIndex

    index = FaqIndex.build(SAMPLE)
    print(f"\n## sample FAQ ({SAMPLE.name}, {len(index)} entries): top-1 confidence, shipped vs version 1")
    for question in SAMPLE_QUESTIONS:
        cells = []
        for label, scorer in (("shipped", model), ("version 1", V1_SHIPPED)):
            index.revise(confidence=scorer)
            best = index.ask(question, k=1, min_score=0.0)[0]
            cells.append(f"{label} {best.score:.3f}")
        print(f"  {question!r} -> {best.entry.id} ({best.entry.answer[:40]!r}...): " + ", ".join(cells))


def report(data_dir: Path, cache: Path, *, write_default: bool = False) -> None:
    """Print every section (benchmarks/quality.py calls this); ``write_default`` refits the shipped model."""
    cache.mkdir(parents=True, exist_ok=True)
    data = collect(cache, data_dir)
    weight = confidence.FUSION_WEIGHT
    section_ranking(data, sorted({0.0, 0.05, 0.1, 0.15, 0.2, 0.3, weight}))
    section_transfer(data, weight)
    section_calibrate(data, weight)
    model = fit(data, SETS, weight, SHIPPED)
    print(f"\nmodel fitted on both sets: {json.dumps(model.to_dict())}")
    shipped = confidence.default_model() if not write_default else model
    section_size(data, shipped)
    section_sample(shipped)
    if write_default:
        target = Path(confidence.__file__).with_name(confidence.DEFAULT_FILE)
        target.write_text(json.dumps(model.to_dict(), indent=2) + "\n", encoding="utf-8")
        print(f"wrote {target}")
