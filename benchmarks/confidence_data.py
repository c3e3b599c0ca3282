"""Evidence for benchmarks/confidence.py: per question, every entry's cosine and raw BM25 on an FAQ.

For each shared set it builds the default index (flat, hybrid BM25) of the set
alone and of the set grown about 20 times with unrelated entries (the other
set's entries, then docstrings of the Python standard library, numpy, pandas,
networkx and sympy: answer = the first 300 characters, no question, so one
vector each). Vectors are cached by text digest in ``--cache`` (an
:class:`~faq_search.index.cache.EmbeddingCache`), so only the first run
encodes (about 15,000 docstring entries: a few minutes on 2 cores).

    python benchmarks/confidence_data.py --cache /tmp/faq-conf-cache
"""

from __future__ import annotations

import argparse
import contextlib
import importlib
import inspect
import io
import pkgutil
import sys
import warnings
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from faq_search.corpus import FaqEntry, read_faq
from faq_search.index.cache import EmbeddingCache
from faq_search.index.confidence import POOL, candidate_pool, question_groups
from faq_search.index.faq_index import FaqIndex
from faq_search.index.lexical import entry_document
from faq_search.index.pool_lexical import PoolLexicon
from faq_search.quality.queries import LabelledQuery, read_queries

SHARED = Path(__file__).resolve().parent.parent.parent / "shared" / "data"
SETS = ("stackfaq", "covidfaq_jhu")
GROWTH = 20
_SKIP = {"antigravity", "this", "idlelib", "tkinter", "turtle", "turtledemo", "test", "lib2to3", "ensurepip", "venv"}
_LIBRARIES = ("numpy", "pandas", "networkx", "sympy")


@dataclass
class Evidence:
    """Per question, on one FAQ: every entry's cosine and FAQ-wide BM25, the candidates, the right entries."""

    cosine: np.ndarray  # float32 [questions, entries]
    lexical: np.ndarray  # float32 [questions, entries], the FAQ-wide BM25 today's fusion uses
    pools: list[tuple[np.ndarray, np.ndarray]]  # per question: candidate entries, their pool BM25
    relevant: list[set[int]]
    entries: int
    groups: np.ndarray  # per entry, its question group (entries sharing a question are siblings)
    negatives: list[tuple[np.ndarray, np.ndarray, np.ndarray]] | None = None  # the other set's questions: pools


def _module_names() -> Iterator[str]:
    roots = sorted(m for m in sys.stdlib_module_names if not m.startswith("_") and m not in _SKIP)
    for root in [*roots, *_LIBRARIES]:
        yield root
        try:
            module = importlib.import_module(root)
        except Exception:  # any module that does not import is simply skipped
            continue
        for info in pkgutil.walk_packages(getattr(module, "__path__", []), root + "."):
            if not any(part in info.name for part in (".tests", ".test", "._", ".conftest", "testing")):
                yield info.name


def docstring_entries(count: int) -> list[FaqEntry]:
    """Up to ``count`` unrelated FAQ entries made of library docstrings (deterministic for one install)."""
    warnings.filterwarnings("ignore")
    seen: set[str] = set()
    out: list[FaqEntry] = []
    for name in _module_names():
        try:
            with contextlib.redirect_stdout(io.StringIO()), contextlib.redirect_stderr(io.StringIO()):
                module = importlib.import_module(name)
        except BaseException:  # some modules exit or raise odd things on import
            continue
        for attr, obj in list(vars(module).items()):
            if getattr(obj, "__module__", name) != name:
                continue
            members = [(f"{name}.{attr}", obj)]
            if inspect.isclass(obj):
                members += [(f"{name}.{attr}.{a}", o) for a, o in vars(obj).items() if callable(o)]
            for qualified, member in members:
                doc = inspect.getdoc(member) if inspect.isroutine(member) or inspect.isclass(member) else None
                if doc and len(doc) > 80 and doc not in seen:
                    seen.add(doc)
                    out.append(FaqEntry(id=f"doc:{qualified}", answer=doc[:300]))
                    if len(out) >= count:
                        return out
    return out


def load_set(name: str, data: Path = SHARED) -> tuple[list[FaqEntry], list[LabelledQuery]]:
    entries = read_faq(data / name / "faq.csv")
    return entries, read_queries(data / name / "queries.csv", known_ids=[i for e in entries for i in e.ids])


def grown_faq(name: str, entries: list[FaqEntry], data: Path = SHARED) -> list[FaqEntry]:
    """``entries`` first, then about ``GROWTH`` times as many unrelated ones."""
    other = next(s for s in SETS if s != name)
    wanted = GROWTH * len(entries)
    extra = [FaqEntry(id=f"other:{e.id}", answer=e.answer, questions=e.questions) for e in load_set(other, data)[0]]
    extra += docstring_entries(wanted - len(extra))
    return [*entries, *extra[:wanted]]


def entry_cosines(index: FaqIndex, query_vectors: np.ndarray) -> np.ndarray:
    """Exact cosines ``[questions, entries]``: the best of each entry's rows."""
    vectors = index.stored_vectors()
    if vectors is None:
        raise SystemExit("the evidence needs a flat index")
    rows = query_vectors @ vectors.T
    order = np.argsort(index.store.row_entry, kind="stable")
    starts = np.searchsorted(index.store.row_entry[order], np.arange(len(index.entries)))
    return np.maximum.reduceat(rows[:, order], starts, axis=1).astype(np.float32)


def candidates(
    index: FaqIndex, lexicon: PoolLexicon, texts: list[str], cosine: np.ndarray
) -> list[tuple[np.ndarray, np.ndarray]]:
    """Per question: the dense top-``POOL`` entries and their pool BM25."""
    out = []
    for row, text in enumerate(texts):
        pool = candidate_pool(cosine[row])
        out.append((pool, lexicon.scores(text, pool.tolist(), POOL)))
    return out


def evidence(
    index: FaqIndex,
    queries: list[LabelledQuery],
    query_vectors: np.ndarray,
    negatives: tuple[list[str], np.ndarray] | None = None,
) -> Evidence:
    """Exact cosines (max over an entry's rows) and raw BM25 of every entry, from the index's public parts.

    ``negatives`` (texts and vectors of questions this FAQ cannot answer): their candidate pools too.
    """
    cosine = entry_cosines(index, query_vectors)
    lexical = index.lexical.scores([q.query for q in queries])
    lexicon = PoolLexicon([entry_document(e.questions, e.answer) for e in index.entries])
    pools = candidates(index, lexicon, [q.query for q in queries], cosine)
    positions = {i: n for n, e in enumerate(index.entries) for i in e.ids}  # merged duplicate answers: aliases
    relevant = [{positions[i] for i in q.relevant} for q in queries]
    groups = question_groups([e.questions for e in index.entries])
    negative_pools = None
    if negatives is not None:
        texts, vectors = negatives
        negative_cosine = entry_cosines(index, vectors)
        negative_pools = [
            (p, b, negative_cosine[n, p]) for n, (p, b) in enumerate(candidates(index, lexicon, texts, negative_cosine))
        ]
    return Evidence(cosine, lexical, pools, relevant, len(index.entries), groups, negative_pools)


def collect(cache_dir: Path, data: Path = SHARED, sets: tuple[str, ...] = SETS) -> dict[str, dict[str, Evidence]]:
    """``{set: {"alone": Evidence, "grown": Evidence}}`` with the default encoder (vectors cached)."""
    from faq_search.encoding.encoder import BertEncoder

    encoder = BertEncoder()
    cache = EmbeddingCache(cache_dir / "vectors", encoder.dimension)
    out: dict[str, dict[str, Evidence]] = {}
    vectors: dict[str, tuple[list[str], np.ndarray]] = {}
    for name in SETS:
        queries = load_set(name, data)[1]
        query_file = cache_dir / f"{name}-queries.npy"
        if query_file.exists():
            query_vectors = np.load(query_file)
        else:
            query_vectors = encoder.encode([q.query for q in queries])
            np.save(query_file, query_vectors)
        vectors[name] = ([q.query for q in queries], query_vectors)
    for name in sets:
        entries, queries = load_set(name, data)
        query_vectors = vectors[name][1]
        other = next(s for s in SETS if s != name)
        out[name] = {}
        for variant, faq in (("alone", entries), ("grown", grown_faq(name, entries, data))):
            index = FaqIndex.build(faq, encoder=encoder, cache=cache)
            negatives = vectors[other] if variant == "alone" else None
            out[name][variant] = evidence(index, queries, query_vectors, negatives)
            print(f"{name} {variant}: {len(faq)} entries", file=sys.stderr, flush=True)
    return out


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--cache", type=Path, default=Path("/tmp/faq-conf-cache"))
    parser.add_argument("--data", type=Path, default=SHARED, help="the shared sets (default: ../shared/data)")
    args = parser.parse_args()
    args.cache.mkdir(parents=True, exist_ok=True)
    collect(args.cache, args.data)
