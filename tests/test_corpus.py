"""read_faq: every file format, column mapping, metadata, derived ids, and every user-fixable error."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import pandas as pd
import pytest

from faq_search.corpus import FaqEntry, merge_duplicate_answers, read_faq
from faq_search.errors import InputError
from tests.conftest import DATA, REPO

Writer = Callable[[pd.DataFrame, Path], None]

WRITERS: dict[str, Writer] = {
    "csv": lambda df, p: df.to_csv(p, index=False),
    "tsv": lambda df, p: df.to_csv(p, sep="\t", index=False),
    "json": lambda df, p: df.to_json(p, orient="records", force_ascii=False),
    "jsonl": lambda df, p: df.to_json(p, orient="records", lines=True, force_ascii=False),
    "parquet": lambda df, p: df.to_parquet(p, index=False),
    "xlsx": lambda df, p: df.to_excel(p, index=False),
}
ALL_FORMATS = list(WRITERS)
RECORD_FORMATS = {"json", "jsonl"}
SHEET_FORMATS = {"csv", "tsv", "xlsx"}


def write(tmp_path: Path, df: pd.DataFrame, fmt: str, stem: str = "faq") -> Path:
    path = tmp_path / f"{stem}.{fmt}"
    WRITERS[fmt](df, path)
    return path


def read_error(path: Path, **kwargs: object) -> str:
    with pytest.raises(InputError) as info:
        read_faq(path, **kwargs)  # type: ignore[arg-type]
    return str(info.value)


def without(message: str, path: Path) -> str:
    """The message minus the path (tmp_path holds the test's name, which may contain any word)."""
    return message.replace(str(path), "<path>")


SAMPLE = pd.DataFrame(
    {
        "id": ["ship-1", "ret-2", "pay-3"],
        "question": ["How long does shipping take?", "Can I return sale items?", "Do you take PayPal?"],
        "answer": ["Two to three days.", "Yes, within 30 days — Grüße!", "Yes, and all major cards."],
        "category": ["shipping", "returns", "payments"],
        "url": ["https://x.test/ship", "", "https://x.test/pay"],
    }
)

EXPECTED = [
    FaqEntry(
        "ship-1",
        "Two to three days.",
        ("How long does shipping take?",),
        {"category": "shipping", "url": "https://x.test/ship"},
    ),
    FaqEntry("ret-2", "Yes, within 30 days — Grüße!", ("Can I return sale items?",), {"category": "returns"}),
    FaqEntry(
        "pay-3",
        "Yes, and all major cards.",
        ("Do you take PayPal?",),
        {"category": "payments", "url": "https://x.test/pay"},
    ),
]


# -- formats -----------------------------------------------------------------


@pytest.mark.parametrize("fmt", ALL_FORMATS)
def test_every_format_reads_the_same_entries(tmp_path: Path, fmt: str) -> None:
    entries = read_faq(write(tmp_path, SAMPLE, fmt))
    assert entries == EXPECTED
    assert all(isinstance(e, FaqEntry) for e in entries)
    assert [e.question for e in entries] == SAMPLE["question"].tolist()


@pytest.mark.parametrize(("fmt", "alias"), [("tsv", "tab"), ("jsonl", "ndjson"), ("parquet", "pq")])
def test_suffix_aliases(tmp_path: Path, fmt: str, alias: str) -> None:
    original = write(tmp_path, SAMPLE, fmt)
    renamed = original.rename(tmp_path / f"faq.{alias}")
    assert read_faq(renamed) == EXPECTED


def test_suffix_is_case_insensitive(tmp_path: Path) -> None:
    path = write(tmp_path, SAMPLE, "csv").rename(tmp_path / "FAQ.CSV")
    assert read_faq(path) == EXPECTED


@pytest.mark.parametrize(
    ("fmt", "name"),
    [("csv", "csv"), ("tsv", "tsv"), ("json", "json"), ("jsonl", "jsonl"), ("parquet", "parquet"), ("xlsx", "excel")],
)
def test_explicit_format_overrides_the_suffix(tmp_path: Path, fmt: str, name: str) -> None:
    path = write(tmp_path, SAMPLE, fmt).rename(tmp_path / "faq.txt")
    assert read_faq(path, file_format=name) == EXPECTED
    with pytest.raises(InputError, match=r"\.txt"):
        read_faq(path)


def test_explicit_format_sets_the_row_numbering(tmp_path: Path) -> None:
    path = write(tmp_path, pd.DataFrame({"answer": ["A", ""]}), "jsonl").rename(tmp_path / "faq.log")
    assert "empty answer in record 2;" in read_error(path, file_format="jsonl")


def test_explicit_unknown_format_is_an_input_error(tmp_path: Path) -> None:
    path = write(tmp_path, SAMPLE, "csv")
    message = read_error(path, file_format="yaml")
    assert "'yaml'" in message
    assert "csv" in message and "parquet" in message


def test_csv_with_utf8_bom_and_quoted_multiline_cells(tmp_path: Path) -> None:
    path = tmp_path / "faq.csv"
    path.write_bytes('\ufeffid,answer\r\na,"line one\r\nline two, with comma"\r\nb,"say ""hi"""\r\n'.encode())
    entries = read_faq(path)
    assert [e.id for e in entries] == ["a", "b"]  # the BOM is not part of the first column's name
    assert entries[0].answer == "line one\r\nline two, with comma"
    assert entries[1].answer == 'say "hi"'


def test_cells_are_stripped_and_text_is_kept_verbatim(tmp_path: Path) -> None:
    df = pd.DataFrame({"id": ["  007 "], "question": ["  Why? "], "answer": ["\t00123 \n"], "zip": ["01234"]})
    for fmt in ALL_FORMATS:
        (entry,) = read_faq(write(tmp_path, df, fmt))
        # leading zeros survive (no number parsing), surrounding whitespace does not
        assert entry == FaqEntry("007", "00123", ("Why?",), {"zip": "01234"}), fmt


def test_sample_faq_has_48_entries_with_questions() -> None:
    entries = read_faq(DATA / "faq.csv")
    assert len(entries) == 48
    assert all(e.questions and e.question == e.questions[0] for e in entries)
    assert all(e.answer for e in entries)
    assert len({e.id for e in entries}) == 48
    assert entries[0].id == "orders-01"
    assert entries[0].question == "How do I place an order?"
    assert all(re.fullmatch(r"[a-z]+-\d\d", e.id) for e in entries)
    assert all(e.metadata == {} for e in entries)


# -- column mapping ------------------------------------------------------------


@pytest.mark.parametrize("fmt", ALL_FORMATS)
def test_explicit_column_names(tmp_path: Path, fmt: str) -> None:
    df = pd.DataFrame(
        {
            "Key": ["k1", "k2"],
            "Ask": ["Where is my parcel?", "How do I pay?"],
            "Reply": ["Track it online.", "By card."],
            "question": ["not a question", "column"],  # a default-named column becomes metadata here
        }
    )
    entries = read_faq(write(tmp_path, df, fmt), answer_column="Reply", question_column="Ask", id_column="Key")
    assert entries == [
        FaqEntry("k1", "Track it online.", ("Where is my parcel?",), {"question": "not a question"}),
        FaqEntry("k2", "By card.", ("How do I pay?",), {"question": "column"}),
    ]


@pytest.mark.parametrize("fmt", ALL_FORMATS)
def test_default_columns_match_case_insensitively(tmp_path: Path, fmt: str) -> None:
    df = pd.DataFrame({"ID": ["a"], " Question ": ["Q?"], "ANSWER": ["A."], "Topic": ["t"]})
    assert read_faq(write(tmp_path, df, fmt)) == [FaqEntry("a", "A.", ("Q?",), {"Topic": "t"})]


def test_explicit_column_names_match_case_insensitively(tmp_path: Path) -> None:
    df = pd.DataFrame({"Key": ["a"], "Ask": ["Q?"], "Reply": ["A."]})
    path = write(tmp_path, df, "csv")
    assert read_faq(path, answer_column="reply", question_column="ASK", id_column="key") == [
        FaqEntry("a", "A.", ("Q?",), {})
    ]


def test_an_exact_column_name_wins_over_a_case_variant(tmp_path: Path) -> None:
    df = pd.DataFrame({"Answer": ["wrong"], "answer": ["right"]})
    (entry,) = read_faq(write(tmp_path, df, "csv"))
    assert entry.answer == "right"
    assert entry.metadata == {"Answer": "wrong"}


@pytest.mark.parametrize("fmt", ALL_FORMATS)
def test_several_question_columns_are_paraphrases(tmp_path: Path, fmt: str) -> None:
    df = pd.DataFrame(
        {
            "answer": ["Use the tracking link.", "Within 30 days."],
            "q1": ["Where is my parcel?", "Can I return it?"],
            "q2": ["Track my order", ""],
            "q3": ["Where is my parcel?", "Return policy?"],  # a repeated paraphrase is kept once
            "note": ["n1", "n2"],
        }
    )
    entries = read_faq(write(tmp_path, df, fmt), question_column=["q1", "q2", "q3"])
    assert [e.questions for e in entries] == [
        ("Where is my parcel?", "Track my order"),
        ("Can I return it?", "Return policy?"),
    ]
    assert [e.question for e in entries] == ["Where is my parcel?", "Can I return it?"]
    assert [e.metadata for e in entries] == [{"note": "n1"}, {"note": "n2"}]


@pytest.mark.parametrize("fmt", ["json", "jsonl", "parquet"])
def test_list_cells_are_paraphrases(tmp_path: Path, fmt: str) -> None:
    df = pd.DataFrame(
        {
            "id": ["a", "b", "c"],
            "question": [["Where is it?", "Track parcel", " ", "Where is it?"], ["Just one"], []],
            "answer": ["Tracking link.", "Single.", "No questions."],
        }
    )
    entries = read_faq(write(tmp_path, df, fmt))
    assert [e.questions for e in entries] == [("Where is it?", "Track parcel"), ("Just one",), ()]
    assert entries[2].question is None


def test_list_cells_combine_with_other_question_columns(tmp_path: Path) -> None:
    path = tmp_path / "faq.jsonl"
    path.write_text(
        json.dumps({"answer": "A", "paraphrases": ["p1", "p2"], "question": "main"})
        + "\n"
        + json.dumps({"answer": "B", "paraphrases": None, "question": "only"})
        + "\n",
        encoding="utf-8",
    )
    entries = read_faq(path, question_column=["question", "paraphrases"])
    assert [e.questions for e in entries] == [("main", "p1", "p2"), ("only",)]


@pytest.mark.parametrize("fmt", ALL_FORMATS)
def test_no_question_column_means_no_questions(tmp_path: Path, fmt: str) -> None:
    df = pd.DataFrame({"id": ["a", "b"], "answer": ["A", "B"]})
    entries = read_faq(write(tmp_path, df, fmt))
    assert [(e.id, e.questions, e.question) for e in entries] == [("a", (), None), ("b", (), None)]


def test_empty_question_cells_give_no_question(tmp_path: Path) -> None:
    df = pd.DataFrame({"question": ["Q?", "", "   "], "answer": ["A", "B", "C"]})
    entries = read_faq(write(tmp_path, df, "csv"))
    assert [e.questions for e in entries] == [("Q?",), (), ()]


@pytest.mark.parametrize("fmt", ALL_FORMATS)
def test_metadata_keeps_other_columns_as_text(tmp_path: Path, fmt: str) -> None:
    df = pd.DataFrame(
        {
            "id": ["a", "b"],
            "answer": ["A", "B"],
            "count": [3, 4],
            "ratio": [1.5, 2.0],
            "tag": ["x", None],
        }
    )
    entries = read_faq(write(tmp_path, df, fmt))
    assert entries[0].metadata == {"count": "3", "ratio": "1.5", "tag": "x"}
    # text formats keep the cell's text as written; typed formats give whole floats without ".0"
    whole = "2.0" if fmt in ("csv", "tsv") else "2"
    assert entries[1].metadata == {"count": "4", "ratio": whole}  # missing cells are left out
    assert all(isinstance(v, str) for e in entries for v in e.metadata.values())


def test_numeric_ids_become_text(tmp_path: Path) -> None:
    path = tmp_path / "faq.json"
    path.write_text(json.dumps([{"id": 1, "answer": "A"}, {"id": 20, "answer": "B"}]), encoding="utf-8")
    assert [e.id for e in read_faq(path)] == ["1", "20"]


def test_entry_dict_round_trip() -> None:
    for entry in [*EXPECTED, FaqEntry("x", "y")]:
        data = entry.to_dict()
        assert json.loads(json.dumps(data)) == data
        assert data["question"] == entry.question
        assert FaqEntry.from_dict(data) == entry


# -- derived ids ---------------------------------------------------------------

NO_IDS = pd.DataFrame(
    {
        "question": ["Where is my parcel?", "Can I return it?", "Where is my parcel?", "Can I return it?"],
        "answer": ["Use the tracking link.", "Within 30 days.", "Use the tracking link.", "Yes."],
    }
)


@pytest.mark.parametrize("fmt", ALL_FORMATS)
def test_derived_ids_are_unique_and_identical_rows_get_suffixes(tmp_path: Path, fmt: str) -> None:
    ids = [e.id for e in read_faq(write(tmp_path, NO_IDS, fmt), keep_duplicate_answers=True)]
    assert len(set(ids)) == 4
    assert all(re.fullmatch(r"faq-[0-9a-f]{12}(-\d+)?", i) for i in ids)
    assert ids[2] == f"{ids[0]}-2"  # the identical row, in file order
    assert ids[1] != ids[3]  # same question, other answer: another id


def test_rows_with_the_same_answer_become_one_entry_with_every_question_and_id(tmp_path: Path) -> None:
    tracking = "Use the tracking link."
    frame = pd.DataFrame(
        {
            "id": ["a", "b", "c", "d"],
            "question": ["Where is my parcel?", "Can I return it?", "Parcel not here yet?", "Where is my parcel?"],
            "answer": [tracking, "Within 30 days.", "Use  the tracking\nlink. ", tracking],
            "topic": ["shipping", "returns", "other", "again"],
        }
    )
    entries = read_faq(write(tmp_path, frame, "csv"))
    assert [e.id for e in entries] == ["a", "b"]
    merged = entries[0]
    assert merged.ids == ("a", "c", "d") and merged.aliases == ("c", "d")
    assert merged.questions == ("Where is my parcel?", "Parcel not here yet?")  # no repeats, file order
    assert merged.answer == "Use the tracking link." and merged.metadata == {"topic": "shipping"}
    assert FaqEntry.from_dict(merged.to_dict()) == merged
    assert [e.id for e in read_faq(write(tmp_path, frame, "csv"), keep_duplicate_answers=True)] == ["a", "b", "c", "d"]
    assert merge_duplicate_answers(entries) == entries  # idempotent


def test_derived_ids_do_not_depend_on_the_format_or_on_other_rows(tmp_path: Path) -> None:
    reference = [e.id for e in read_faq(write(tmp_path, NO_IDS, "csv"), keep_duplicate_answers=True)]
    for fmt in ALL_FORMATS:
        path = write(tmp_path, NO_IDS, fmt, stem=f"x-{fmt}")
        assert [e.id for e in read_faq(path, keep_duplicate_answers=True)] == reference
    grown = pd.concat([pd.DataFrame({"question": ["New?"], "answer": ["New."]}), NO_IDS], ignore_index=True)
    assert [e.id for e in read_faq(write(tmp_path, grown, "csv", stem="grown"), keep_duplicate_answers=True)][
        1:
    ] == reference
    shuffled = NO_IDS.iloc[[1, 0, 3]]
    assert [e.id for e in read_faq(write(tmp_path, shuffled, "csv", stem="shuf"))] == [
        reference[1],
        reference[0],
        reference[3],
    ]


def test_derived_ids_depend_on_the_question_too(tmp_path: Path) -> None:
    df = pd.DataFrame({"question": ["A?", "B?", ""], "answer": ["Same.", "Same.", "Same."]})
    ids = [e.id for e in read_faq(write(tmp_path, df, "csv"), keep_duplicate_answers=True)]
    assert len(set(ids)) == 3
    assert not any(i.endswith("-2") for i in ids)


def test_derived_ids_are_stable_across_processes(tmp_path: Path) -> None:
    path = write(tmp_path, NO_IDS, "csv")
    here = [e.id for e in read_faq(path)]
    script = "import sys; from faq_search.corpus import read_faq; print(' '.join(e.id for e in read_faq(sys.argv[1])))"
    outputs = set()
    for seed in ("1", "12345"):
        env = {**os.environ, "PYTHONHASHSEED": seed}
        done = subprocess.run(
            [sys.executable, "-c", script, str(path)], capture_output=True, text=True, env=env, cwd=REPO, check=True
        )
        outputs.add(done.stdout.strip())
    assert outputs == {" ".join(here)}


# -- errors ------------------------------------------------------------------


def test_missing_file(tmp_path: Path) -> None:
    path = tmp_path / "nope.csv"
    message = read_error(path)
    assert str(path) in message and "not found" in without(message, path)


def test_directory(tmp_path: Path) -> None:
    folder = tmp_path / "faq.csv"
    folder.mkdir()
    message = read_error(folder)
    assert str(folder) in message and "is a directory" in without(message, folder)


@pytest.mark.parametrize("name", ["faq.txt", "faq.xls", "faq"])
def test_unknown_suffix(tmp_path: Path, name: str) -> None:
    path = tmp_path / name
    path.write_text("id,answer\na,b\n", encoding="utf-8")
    message = read_error(path)
    assert "unknown FAQ file format" in message
    assert (repr(path.suffix) if path.suffix else "(no suffix)") in message
    for known in (".csv", ".tsv", ".json", ".jsonl", ".parquet", ".xlsx"):
        assert known in message
    assert "--format" in message


@pytest.mark.parametrize(
    ("name", "data"),
    [
        ("faq.csv", b""),
        ("faq.csv", b"\n\n"),
        ("faq.tsv", b""),
        ("faq.json", b""),
        ("faq.json", b"  \n"),
        ("faq.jsonl", b""),
        ("faq.jsonl", b"\n\n"),
        ("faq.parquet", b""),
        ("faq.xlsx", b""),
    ],
    ids=["csv", "csv-blank", "tsv", "json", "json-blank", "jsonl", "jsonl-blank", "parquet", "xlsx"],
)
def test_empty_file(tmp_path: Path, name: str, data: bytes) -> None:
    path = tmp_path / name
    path.write_bytes(data)
    message = read_error(path)
    assert message.startswith(f"{path}: ")
    assert "the file is empty" in without(message, path)
    assert "column" not in message and "engine" not in message


@pytest.mark.parametrize("fmt", ["csv", "tsv", "parquet", "xlsx"])
def test_header_only_file_has_no_rows(tmp_path: Path, fmt: str) -> None:
    df = pd.DataFrame({"id": pd.Series([], dtype=str), "answer": pd.Series([], dtype=str)})
    message = read_error(write(tmp_path, df, fmt))
    assert "has no rows" in message


@pytest.mark.parametrize(("name", "data"), [("faq.json", b"[]"), ("faq.json", b" [ ] \n")])
def test_json_without_records(tmp_path: Path, name: str, data: bytes) -> None:
    path = tmp_path / name
    path.write_bytes(data)
    message = read_error(path)
    assert "has no records" in message
    assert "column" not in message


@pytest.mark.parametrize("fmt", ALL_FORMATS)
def test_missing_answer_column_lists_the_columns(tmp_path: Path, fmt: str) -> None:
    df = pd.DataFrame({"id": ["a"], "question": ["Q?"], "reply": ["A."]})
    message = read_error(write(tmp_path, df, fmt))
    assert "no answer column 'answer'" in message
    assert "'id', 'question', 'reply'" in message
    assert "--answer-column" in message
    assert f"faq.{fmt}" in message


def test_missing_explicit_answer_column(tmp_path: Path) -> None:
    message = read_error(write(tmp_path, SAMPLE, "csv"), answer_column="text")
    assert "no answer column 'text'" in message
    assert "'id', 'question', 'answer', 'category', 'url'" in message


@pytest.mark.parametrize(
    ("kwargs", "expected"),
    [
        ({"question_column": "ask"}, "no question column 'ask'"),
        ({"question_column": ["question", "paraphrase"]}, "no question column 'paraphrase'"),
        ({"id_column": "key"}, "no id column 'key'"),
    ],
)
def test_explicitly_named_missing_columns(tmp_path: Path, kwargs: dict[str, object], expected: str) -> None:
    message = read_error(write(tmp_path, SAMPLE, "csv"), **kwargs)
    assert expected in message
    assert "'id', 'question', 'answer', 'category', 'url'" in message


EMPTY_ANSWERS = pd.DataFrame({"id": ["a", "b", "c", "d", "e"], "answer": ["A", "", "C", "   ", "\t"]})


@pytest.mark.parametrize("fmt", sorted(SHEET_FORMATS))
def test_empty_answers_name_spreadsheet_rows(tmp_path: Path, fmt: str) -> None:
    message = read_error(write(tmp_path, EMPTY_ANSWERS, fmt))
    assert "empty answer in rows 3, 5, 6;" in message  # header is row 1, so the first data row is row 2
    assert f"faq.{fmt}" in message


@pytest.mark.parametrize("fmt", sorted(RECORD_FORMATS))
def test_empty_answers_name_json_records(tmp_path: Path, fmt: str) -> None:
    message = read_error(write(tmp_path, EMPTY_ANSWERS, fmt))
    assert "empty answer in records 2, 4, 5;" in message


def test_missing_answer_values(tmp_path: Path) -> None:
    path = tmp_path / "faq.json"
    path.write_text(json.dumps([{"answer": "A"}, {"answer": None}, {"other": "x"}]), encoding="utf-8")
    assert "empty answer in records 2, 3;" in read_error(path)
    parquet = write(tmp_path, pd.DataFrame({"answer": ["A", None]}), "parquet")
    assert "empty answer in row" in read_error(parquet)


def test_one_empty_answer_is_singular_and_many_are_abbreviated(tmp_path: Path) -> None:
    one = write(tmp_path, pd.DataFrame({"answer": ["A", ""]}), "csv", stem="one")
    assert "empty answer in row 3;" in read_error(one)
    many = write(tmp_path, pd.DataFrame({"answer": ["A"] + [""] * 13}), "csv", stem="many")
    assert "empty answer in rows 3, 4, 5, 6, 7, 8, 9, 10, 11, 12 and 3 more;" in read_error(many)


def test_empty_answer_row_counts_quoted_multiline_cells_as_one_row(tmp_path: Path) -> None:
    path = tmp_path / "faq.csv"
    path.write_text('id,answer\na,"two\nlines"\nb,""\n', encoding="utf-8")
    assert "empty answer in row 3;" in read_error(path)


@pytest.mark.parametrize(
    ("name", "text", "expected"),
    [
        ("faq.csv", "id,answer\na,A\n\nb,\n", "empty answer in row 4;"),
        ("faq.csv", "id,answer\r\na,A\r\n\r\nb,\r\n", "empty answer in row 4;"),
        ("faq.csv", "id,question,answer\n\n\na,q,A\n\nb,,\nc,q,\n", "empty answer in rows 6, 7;"),
        ("faq.tsv", "id\tanswer\na\tA\n\nb\t\n", "empty answer in row 4;"),
        ("faq.csv", "id,answer\na,A\n\n,B\n", "empty id in row 4;"),
        ("faq.csv", 'answer\nA\n\nB\n""\n', "empty answer in row 5;"),  # one column: "" is an empty cell
    ],
)
def test_row_numbers_count_blank_lines(tmp_path: Path, name: str, text: str, expected: str) -> None:
    path = tmp_path / name
    path.write_bytes(text.encode("utf-8"))  # byte-exact: keep the \r\n line ends
    assert expected in read_error(path)


def test_blank_lines_between_rows_are_not_entries(tmp_path: Path) -> None:
    path = tmp_path / "faq.csv"
    path.write_text("id,answer\n\na,A\n\n\nb,B\n,\n\n", encoding="utf-8")
    assert [(e.id, e.answer) for e in read_faq(path)] == [("a", "A"), ("b", "B")]


def test_one_column_file_skips_blank_lines(tmp_path: Path) -> None:
    path = tmp_path / "faq.csv"
    path.write_text("answer\nA\n\nB\n", encoding="utf-8")
    assert [e.answer for e in read_faq(path)] == ["A", "B"]


def test_one_column_file_with_a_trailing_blank_line(tmp_path: Path) -> None:
    path = tmp_path / "faq.csv"
    path.write_text("answer\nA\nB\n\n", encoding="utf-8")
    assert [e.answer for e in read_faq(path)] == ["A", "B"]


@pytest.mark.parametrize("fmt", ALL_FORMATS)
def test_empty_ids(tmp_path: Path, fmt: str) -> None:
    df = pd.DataFrame({"id": ["a", " ", "c", ""], "answer": ["A", "B", "C", "D"]})
    message = read_error(write(tmp_path, df, fmt))
    numbers = "records 2, 4" if fmt in RECORD_FORMATS else "rows 3, 5"
    assert f"empty id in {numbers};" in message
    assert "id column" in message


@pytest.mark.parametrize("fmt", ALL_FORMATS)
def test_duplicate_ids_are_named(tmp_path: Path, fmt: str) -> None:
    df = pd.DataFrame({"id": ["a", "b", "a", "c", "c", "d"], "answer": list("ABCDEF")})
    message = read_error(write(tmp_path, df, fmt))
    assert "duplicate ids 'a', 'c';" in message
    assert "'b'" not in message and "'d'" not in message


def test_duplicate_ids_after_stripping(tmp_path: Path) -> None:
    df = pd.DataFrame({"id": ["x", " x "], "answer": ["A", "B"]})
    assert "duplicate ids 'x'" in read_error(write(tmp_path, df, "csv"))


@pytest.mark.parametrize(
    ("name", "data"),
    [
        ("faq.csv", b"id,answer\na,caf\xe9\n"),
        ("faq.tsv", b"id\tanswer\na\tcaf\xe9\n"),
        ("faq.json", b'[{"id": "a", "answer": "caf\xe9"}]'),
        ("faq.jsonl", b'{"id": "a", "answer": "caf\xe9"}\n'),
    ],
)
def test_invalid_utf8(tmp_path: Path, name: str, data: bytes) -> None:
    path = tmp_path / name
    path.write_bytes(data)
    message = read_error(path)
    assert str(path) in message
    assert "not valid UTF-8" in message
    bad_byte = data.index(b"\xe9")
    assert f"byte {bad_byte} is not valid UTF-8" in message


@pytest.mark.parametrize(
    ("name", "data"),
    [
        ("faq.json", b'[{"id": "a", "answer": "x"'),
        ("faq.json", b'[{"id": "a", "answer": x}]'),
        ("faq.json", b'{"id": "a", "answer": "x"}'),
        ("faq.jsonl", b'{"id": "a", "answer": "x"}\n{"id": "b",\n'),
    ],
    ids=["truncated", "bare-word", "not-records", "jsonl-broken-line"],
)
def test_malformed_json(tmp_path: Path, name: str, data: bytes) -> None:
    path = tmp_path / name
    path.write_bytes(data)
    message = read_error(path)
    fmt = name.split(".")[1]
    assert f"{path}: cannot be read as {fmt} (" in message
    assert "check the file's format" in message


@pytest.mark.parametrize("name", ["faq.xlsx", "faq.parquet"])
def test_binary_formats_with_wrong_content(tmp_path: Path, name: str) -> None:
    path = tmp_path / name
    path.write_text("id,answer\na,b\n", encoding="utf-8")
    message = read_error(path)
    assert str(path) in message and "cannot be read as" in message
