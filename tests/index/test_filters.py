"""Metadata filters: the grammar, typed columns in the bundle, and filtered asks equal to brute force.

The brute-force oracle is an index built from only the entries a filter keeps:
a filtered ask must return the same entries with the same confidences and
cosines (``Match.lexical`` is the FAQ-wide BM25 and is reported, not compared).
"""

from __future__ import annotations

import time
from pathlib import Path

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from faq_search.bundle.files import read_bundle
from faq_search.corpus import FaqEntry
from faq_search.errors import BundleError, InputError
from faq_search.index import filtered_search
from faq_search.index import ranking as ranking_module
from faq_search.index.columns import ColumnSpec, ColumnType, build_columns
from faq_search.index.faq_index import FaqIndex, Match
from faq_search.index.filters import MAX_DEPTH, And, Comparison, FilterError, Not, Or, fields_of, parse, parse_all
from faq_search.index.lexical import HybridSettings
from tests.conftest import FakeEncoder
from tests.index.filter_samples import COLUMNS, COUNTRIES, PLANS, TAGS, RandomEncoder, filter_entries, oracle

ENTRIES = filter_entries()
QUESTIONS = ["refund for my parcel", "question 5 login card", "store account plan"]
DENSE = HybridSettings(weight=0.0)


def shown(matches: list[Match]) -> list[tuple[str, int, float, float]]:
    return [(m.entry.id, m.rank, round(m.score, 6), round(m.cosine, 6)) for m in matches]


@pytest.fixture(scope="module")
def encoder() -> RandomEncoder:
    return RandomEncoder()


@pytest.fixture(scope="module")
def indexes(encoder: RandomEncoder) -> dict[tuple[str, bool], FaqIndex]:
    """Each index type, with BM25 evidence and dense only, over the same FAQ."""
    return {
        (kind, fused): FaqIndex.build(
            ENTRIES, encoder=encoder, metadata_columns=COLUMNS, index_type=kind, hybrid=None if fused else DENSE
        )
        for kind in ("flat", "hnsw", "ivf")
        for fused in (True, False)
    }


# -- the grammar ----------------------------------------------------------------


def test_parse_builds_the_documented_tree() -> None:
    assert parse("plan=pro and country in (DE, AT)") == And(
        (Comparison("plan", "=", ("pro",)), Comparison("country", "in", ("DE", "AT")))
    )
    assert parse("a = 1 or b != 'x y' and not (c >= 2)") == Or(
        (
            Comparison("a", "=", ("1",)),
            And((Comparison("b", "!=", ("x y",)), Not(Comparison("c", ">=", ("2",))))),
        )
    )
    assert parse('"product name" = "say \\"hi\\""') == Comparison("product name", "=", ('say "hi"',))
    assert parse("tags NOT IN (a,b)") == Not(Comparison("tags", "in", ("a", "b")))
    assert parse("größe = 'Straße'") == Comparison("größe", "=", ("Straße",))
    assert parse_all(["plan=pro", "price<3"]) == And(
        (Comparison("plan", "=", ("pro",)), Comparison("price", "<", ("3",)))
    )
    assert fields_of(parse("(a=1 or b=2) and not c in (3)")) == ["a", "b", "c"]


@pytest.mark.parametrize(
    ("text", "fragment"),
    [
        ("", "the filter is empty"),
        ("plan", "expected an operator"),
        ("plan=", "expected a value at character 6"),
        ("plan = pro and", "expected a field name"),
        ("plan == pro", "expected a value"),
        ("(plan=pro", "expected ')'"),
        ("plan=pro)", "unexpected ')'"),
        ("plan in pro", "'(' after 'in'"),
        ("plan in (a b)", "')' or ','"),
        ("plan='open", "never closed"),
        ("plan=pro plan=free", "join conditions with 'and' or 'or'"),
        ("plan = and", "quote it"),
        ("plan ~ x", "'~' at position 6 is not allowed"),
        ("plan ! x", "'!' at character 6 is not an operator"),
    ],
)
def test_malformed_filters_get_one_line_naming_the_place(text: str, fragment: str) -> None:
    with pytest.raises(FilterError) as caught:
        parse(text)
    message = str(caught.value)
    assert fragment in message
    assert "\n" not in message


HOSTILE = [
    "(" * 100_000 + "a=b" + ")" * 100_000,
    "not " * 50_000 + "a=b",
    "a=b and " * 100_000 + "a=b",
    "a in (" + ",".join(["x"] * 100_000) + ")",
    "x" * 1_000_000,
    "__import__('os').system('rm -rf /')",
    "plan=pro; DROP TABLE entries; --",
    "plan=pro' or '1'='1",
    "plan=${HOME}",
    "plan=`id`",
    "plan=\x00",
    "plan=pro\nor 1=1",
    "\u202eplan=pro",
    "plan=\ud800",
    "{{7*7}}",
    "lambda: 0",
    "plan = 'a' 'b'",
]


@pytest.mark.parametrize("text", HOSTILE, ids=range(len(HOSTILE)))
def test_hostile_filters_get_a_clean_one_line_error_fast(text: str, indexes: dict[tuple[str, bool], FaqIndex]) -> None:
    index = indexes[("flat", True)]
    started = time.perf_counter()
    with pytest.raises(InputError) as caught:
        index.ask("refund", where=text)
    assert time.perf_counter() - started < 2.0  # bounded work, not a parse of every character's subtree
    message = str(caught.value)
    assert "\n" not in message and len(message) < 400


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    text=st.one_of(
        st.text(max_size=300),
        st.text(alphabet="()'\"\\=!<>, andortiplc0123-\u00e9\u202e\x00", max_size=300),
    )
)
def test_any_text_parses_or_fails_with_one_filter_error(text: str, indexes: dict[tuple[str, bool], FaqIndex]) -> None:
    """Fuzzed filters: a mask of the right size, or a one-line FilterError; never another exception."""
    try:
        mask = indexes[("flat", True)].filter_mask(text)
    except FilterError as exc:
        assert "\n" not in str(exc) and len(str(exc)) < 400
        return
    assert mask is None or (mask.dtype == bool and mask.shape == (len(ENTRIES),))


def test_nesting_up_to_the_limit_parses() -> None:
    depth = MAX_DEPTH - 1
    assert parse("(" * depth + "a=b" + ")" * depth) == Comparison("a", "=", ("b",))
    with pytest.raises(FilterError, match="nests deeper"):
        parse("(" * MAX_DEPTH + "a=b" + ")" * MAX_DEPTH)


# -- typed columns --------------------------------------------------------------


def test_column_types_are_inferred_or_given() -> None:
    columns = build_columns(ENTRIES, [ColumnSpec.parse(c) for c in ("plan", "price", "tags:list", "active")])
    types = {c.name: c.type for c in columns.columns.values()}
    assert types == {
        "plan": ColumnType.STRING,
        "price": ColumnType.NUMBER,
        "tags": ColumnType.LIST,
        "active": ColumnType.BOOLEAN,
    }
    assert ColumnSpec.parse("a:b:number") == ColumnSpec("a:b", ColumnType.NUMBER)
    assert ColumnSpec.parse("time:12") == ColumnSpec("time:12")


def test_unknown_columns_and_bad_typed_values_are_refused() -> None:
    with pytest.raises(InputError, match=r"no entry has a metadata column 'region'.*found: active, country"):
        build_columns(ENTRIES, [ColumnSpec("region")])
    with pytest.raises(InputError, match="'plan' is a number column, but holds 'free'"):
        build_columns(ENTRIES, [ColumnSpec("plan", ColumnType.NUMBER)])
    with pytest.raises(InputError, match="boolean column"):
        build_columns(ENTRIES, [ColumnSpec("plan", ColumnType.BOOLEAN)])


@pytest.mark.parametrize(
    ("where", "message"),
    [
        ("region=EU", "unknown filter field 'region'; the filterable fields are: plan, country, price, tags, active"),
        ("plan=gold", "unknown value 'gold' for filter field 'plan'; known values: enterprise, free, pro"),
        (
            "tags in (billing, vip)",
            "unknown value 'vip' for filter field 'tags'; known values: billing, login, refunds, shipping",
        ),
        ("price=cheap", "'price' is a number field; 'cheap' is not a number"),
        ("plan < pro", "< needs a number field; 'plan' is a string field"),
        ("active=maybe", "'active' is a boolean field; 'maybe' is not true or false"),
    ],
)
def test_unknown_fields_and_values_name_the_known_ones(
    where: str, message: str, indexes: dict[tuple[str, bool], FaqIndex]
) -> None:
    with pytest.raises(FilterError) as caught:
        indexes[("flat", True)].ask("refund", where=where)
    assert str(caught.value) == message


def test_an_index_without_filterable_columns_says_how_to_add_them(encoder: RandomEncoder) -> None:
    index = FaqIndex.build(ENTRIES[:20], encoder=encoder)
    with pytest.raises(FilterError, match="no filterable fields; rebuild it with --metadata-column NAME"):
        index.ask("refund", where="plan=pro")


def test_columns_are_stored_columnar_checksummed_and_survive_updates(tmp_path: Path, encoder: RandomEncoder) -> None:
    index = FaqIndex.build(ENTRIES, encoder=encoder, metadata_columns=COLUMNS)
    index.save(tmp_path / "b")
    manifest, _ = read_bundle(tmp_path / "b")
    stored = sorted(name for name in manifest.files if name.startswith("filters/"))
    assert stored == [
        "filters/0.npy",
        "filters/1.npy",
        "filters/2.npy",
        "filters/3.npy",
        "filters/3.offsets.npy",
        "filters/4.npy",
        "filters/columns.json",
    ]
    loaded = FaqIndex.load(tmp_path / "b", encoder=encoder)
    where = "tags=login and price >= 50 or country in (CH, IT)"
    assert loaded.columns is not None and loaded.columns.specs == index.columns.specs  # type: ignore[union-attr]
    assert np.array_equal(loaded.filter_mask(where), index.filter_mask(where))  # type: ignore[arg-type]
    assert shown(loaded.ask("refund", k=5, where=where)) == shown(index.ask("refund", k=5, where=where))

    loaded.upsert([FaqEntry("new", "a gift card answer", (), {"plan": "gold", "price": "7", "tags": "vip"})])
    mask = loaded.filter_mask("plan=gold and tags=vip")
    assert mask is not None and mask.sum() == 1 and mask[-1]
    loaded.delete(["new"])
    with pytest.raises(FilterError, match="unknown value 'gold'"):
        loaded.filter_mask("plan=gold")

    (tmp_path / "b" / "filters" / "0.npy").write_bytes(b"garbage")
    with pytest.raises(BundleError, match=r"checksum|rebuild"):
        FaqIndex.load(tmp_path / "b", encoder=encoder)


# -- filtered asks against brute force ------------------------------------------

_VALUES = {"plan": PLANS, "country": COUNTRIES, "tags": TAGS, "active": ("true", "false", "yes", "no")}


@st.composite
def comparisons(draw: st.DrawFn) -> tuple[str, str, str, tuple[str, ...]]:
    """``(text, field, op, values)`` of one random comparison over the sample columns."""
    field = draw(st.sampled_from(["plan", "country", "price", "tags", "active"]))
    if field == "price":
        op = draw(st.sampled_from(["=", "!=", "<", "<=", ">", ">=", "in"]))
        pool: tuple[str, ...] = tuple(str(n) for n in range(0, 101, 7))
    else:
        op = draw(st.sampled_from(["=", "!=", "in"]))
        pool = _VALUES[field]
    count = draw(st.integers(1, 3)) if op == "in" else 1
    values = tuple(draw(st.lists(st.sampled_from(pool), min_size=count, max_size=count)))
    quoted = [f"'{v}'" if draw(st.booleans()) else v for v in values]
    text = f"{field} in ({', '.join(quoted)})" if op == "in" else f"{field} {op} {quoted[0]}"
    return text, field, op, values


@st.composite
def filters(draw: st.DrawFn, depth: int = 0) -> tuple[str, object]:
    """A random filter text and a function of metadata that says whether it keeps an entry."""
    if depth >= 2 or draw(st.booleans()):
        text, field, op, values = draw(comparisons())
        return text, lambda m, f=field, o=op, v=values: oracle(m, f, o, v)
    kind = draw(st.sampled_from(["and", "or", "not"]))
    if kind == "not":
        text, keep = draw(filters(depth + 1))
        return f"not ({text})", lambda m, k=keep: not k(m)  # type: ignore[operator]
    parts = draw(st.lists(filters(depth + 1), min_size=2, max_size=3))
    text = f" {kind} ".join(f"({t})" for t, _ in parts)
    joined = all if kind == "and" else any
    return text, lambda m, p=parts, j=joined: j(k(m) for _, k in p)  # type: ignore[operator]


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(drawn=filters())
def test_the_mask_is_the_documented_meaning(
    drawn: tuple[str, object], indexes: dict[tuple[str, bool], FaqIndex]
) -> None:
    text, keep = drawn
    mask = indexes[("flat", True)].filter_mask(text)
    expected = [keep(e.metadata) for e in ENTRIES]  # type: ignore[operator]
    assert mask is not None and mask.tolist() == expected


@settings(max_examples=12, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(drawn=filters(), k=st.sampled_from([1, 3, 10]))
@pytest.mark.parametrize("kind", ["flat", "hnsw", "ivf"])
@pytest.mark.parametrize("fused", [True, False], ids=["bm25", "dense"])
def test_filtered_ask_equals_brute_force_over_the_filtered_entries(
    drawn: tuple[str, object],
    k: int,
    kind: str,
    fused: bool,
    indexes: dict[tuple[str, bool], FaqIndex],
    encoder: RandomEncoder,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # The lexical union picks its extra candidates by the FAQ-wide BM25 (its IDF counts every entry), so a separate
    # index of the kept entries may pick others; the union has its own test below. Here: the pool, the fusion and
    # the confidence within the filter, which must equal that index's exactly.
    monkeypatch.setattr(ranking_module, "LEXICAL_POOL", 0)
    text, keep = drawn
    kept = [e for e in ENTRIES if keep(e.metadata)]  # type: ignore[operator]
    index = indexes[(kind, fused)]
    found = index.ask_batch(QUESTIONS, k=k, min_score=0.0, where=text)
    if not kept:
        assert found == [[] for _ in QUESTIONS]
        return
    oracle_index = FaqIndex.build(kept, encoder=encoder, hybrid=None if fused else DENSE)
    expected = oracle_index.ask_batch(QUESTIONS, k=k, min_score=0.0)
    assert [shown(m) for m in found] == [shown(m) for m in expected]
    assert all(len(m) == min(k, len(kept)) for m in found)


def test_the_lexical_union_stays_inside_the_filter(monkeypatch: pytest.MonkeyPatch) -> None:
    entries = [
        FaqEntry(f"e{i}", f"General answer {i} about orders and delivery.", metadata={"plan": ["free", "pro"][i % 2]})
        for i in range(60)
    ]
    entries += [
        FaqEntry("code-pro", "Error XJ-9041 means the card reader lost power.", metadata={"plan": "pro"}),
        FaqEntry("code-free", "Error XJ-9041 on the free plan: restart the reader.", metadata={"plan": "free"}),
    ]
    index = FaqIndex.build(
        entries, encoder=FakeEncoder(), index_type="hnsw", hybrid=HybridSettings(weight=0.5), metadata_columns=["plan"]
    )
    search = index.store.search  # the ANN search is made blind to both code entries: only the union can add them
    monkeypatch.setattr(
        index.store,
        "search",
        lambda q, k, allowed=None: [[h for h in hs if h.entry < 60] for hs in search(q, k, allowed)],
    )
    found = [m.entry.id for m in index.ask("XJ-9041", k=5, min_score=0.0, where="plan = pro")]
    monkeypatch.setattr(ranking_module, "LEXICAL_POOL", 0)
    assert "code-pro" not in [m.entry.id for m in index.ask("XJ-9041", k=5, min_score=0.0, where="plan = pro")]
    assert "code-pro" in found and "code-free" not in found
    assert all(index.entries[i].metadata["plan"] == "pro" for i in range(len(entries)) if index.entries[i].id in found)


@pytest.mark.parametrize("kind", ["flat", "hnsw", "ivf"])
@pytest.mark.parametrize("where", ["plan=pro", "price < 50", "country=DE and active=true", "price < 4"])
def test_the_approximate_selector_path_also_finds_k(
    kind: str, where: str, indexes: dict[tuple[str, bool], FaqIndex], encoder: RandomEncoder, monkeypatch
) -> None:  # type: ignore[no-untyped-def]
    """Past FILTER_EXACT_ROWS the index's own search skips other rows (ANN: widened); here that path is forced."""
    monkeypatch.setattr(filtered_search, "FILTER_EXACT_ROWS", 0)
    index = indexes[(kind, False)]
    mask = index.filter_mask(where)
    assert mask is not None
    kept = [e for e, m in zip(ENTRIES, mask.tolist(), strict=True) if m]
    expected = FaqIndex.build(kept, encoder=encoder, hybrid=DENSE).ask_batch(QUESTIONS, k=10, min_score=0.0)
    found = index.ask_batch(QUESTIONS, k=10, min_score=0.0, where=where)
    assert [shown(m) for m in found] == [shown(m) for m in expected]


def test_k_matches_whenever_k_pass_and_only_those(indexes: dict[tuple[str, bool], FaqIndex]) -> None:
    for (kind, fused), index in indexes.items():
        rare = ENTRIES[7].metadata["price"]
        one = index.ask("anything at all", k=5, min_score=0.0, where=f"price = {rare}")
        expected = {e.id for e in ENTRIES if e.metadata["price"] == rare}
        assert 1 <= len(expected) < 8 and {m.entry.id for m in one} == expected, (kind, fused)
        many = index.ask("anything at all", k=50, min_score=0.0, where="plan=free and tags=billing")
        passing = [e for e in ENTRIES if e.metadata["plan"] == "free" and "billing" in e.metadata["tags"]]
        assert len(many) == min(50, len(passing))
        assert all(m.entry.metadata["plan"] == "free" for m in many)


def test_where_lists_are_joined_with_and(indexes: dict[tuple[str, bool], FaqIndex]) -> None:
    index = indexes[("flat", True)]
    both = index.ask("refund", k=20, where=["plan=pro", "country in (DE, AT)"])
    joined = index.ask("refund", k=20, where="plan=pro and country in (DE, AT)")
    assert shown(both) == shown(joined) and both
    assert index.ask("refund", k=3, where=None) == index.ask("refund", k=3)
    assert index.ask("refund", k=3, where=[]) == index.ask("refund", k=3)


def test_reindexing_keeps_the_bundles_columns_unless_given(tmp_path: Path, encoder: RandomEncoder) -> None:
    from faq_search.index.update import update_bundle

    first = update_bundle(tmp_path / "b", ENTRIES[:50], encoder=encoder, metadata_columns=["plan", "tags:list"])
    assert first.columns is not None and [c.name for c in first.columns.specs] == ["plan", "tags"]
    again = update_bundle(tmp_path / "b", ENTRIES[:60], encoder=encoder)
    assert again.columns is not None and again.columns.specs == first.columns.specs
    mask = FaqIndex.load(tmp_path / "b", encoder=encoder).filter_mask("tags = login")
    assert mask is not None and mask.tolist() == ["login" in e.metadata["tags"] for e in ENTRIES[:60]]
    none = update_bundle(tmp_path / "b", ENTRIES[:60], encoder=encoder, metadata_columns=[])
    assert none.columns is None
