"""Texts and options, checked before any model loads: every refusal names the fix."""

from __future__ import annotations

import io
import re
from pathlib import Path

import pytest

from faq_search.encoding.settings import Pooling
from faq_search.errors import InputError
from faq_search.export.embeddings import Level, check_options, check_texts, read_texts


@pytest.mark.parametrize(
    ("level", "kwargs", "needle"),
    [
        ("paragraph", {}, "unknown level 'paragraph'; use one of sentence, token, word"),
        ("sentence", {"merge": "mean"}, "--merge applies to --level word only"),
        ("word", {"merge": "median"}, "unknown word merge 'median'"),
        ("token", {"pooling": "max"}, "--pooling applies to --level sentence only"),
        ("word", {"pooling": Pooling.CLS}, "use --merge for words"),
        ("sentence", {"windows": False}, "sentence level always cuts"),
    ],
)
def test_options_that_do_not_apply_are_refused(level: str, kwargs: dict[str, object], needle: str) -> None:
    with pytest.raises(InputError, match=re.escape(needle)):
        check_options(level, **kwargs)  # type: ignore[arg-type]


def test_options_that_apply_pass() -> None:
    assert check_options("WORD", merge="first", windows=False) is Level.WORD
    assert check_options(Level.SENTENCE, pooling="mean_max") is Level.SENTENCE
    assert check_options("token", windows=True) is Level.TOKEN


@pytest.mark.parametrize(
    ("texts", "needle"),
    [([], "no text to embed"), (["fine", "  "], "text 2 is empty"), ("one string", "not one string")],
)
def test_empty_input_is_refused(texts: list[str], needle: str) -> None:
    with pytest.raises(InputError, match=needle):
        check_texts(texts)


def test_read_texts_from_arguments_stdin_and_files(tmp_path: Path) -> None:
    assert read_texts(["a b", "c"]) == ["a b", "c"]
    assert read_texts(["-"], stdin=io.StringIO("first line\n\nsecond line\n")) == ["first line", "second line"]
    (tmp_path / "t.txt").write_text("one\n\ntwo words\n", encoding="utf-8")
    assert read_texts(file=tmp_path / "t.txt") == ["one", "two words"]
    (tmp_path / "t.csv").write_text("id,text,other\n1,hello there,x\n2,bye,y\n", encoding="utf-8")
    assert read_texts(file=tmp_path / "t.csv") == ["hello there", "bye"]
    assert read_texts(file=tmp_path / "t.csv", column="other") == ["x", "y"]
    (tmp_path / "one.jsonl").write_text('{"q": "only column"}\n', encoding="utf-8")
    assert read_texts(file=tmp_path / "one.jsonl") == ["only column"]


@pytest.mark.parametrize(
    ("content", "kwargs", "needle"),
    [
        ("a,b\nx,y\n", {}, "which column holds the texts"),
        ("a,b\nx,y\n", {"column": "c"}, "no column 'c'"),
        ("Text,b\nx,1\n", {"column": "Text"}, None),
        ("text,b\nx,1\n,2\n", {}, "empty in data row 2"),
    ],
)
def test_read_texts_names_the_fix(tmp_path: Path, content: str, kwargs: dict[str, str], needle: str | None) -> None:
    path = tmp_path / "t.csv"
    path.write_text(content, encoding="utf-8")
    if needle is None:
        assert read_texts(file=path, **kwargs) == ["x"]
        return
    with pytest.raises(InputError, match=needle):
        read_texts(file=path, **kwargs)


def test_read_texts_refuses_mixed_sources(tmp_path: Path) -> None:
    with pytest.raises(InputError, match="not both"):
        read_texts(["x"], file=tmp_path / "t.txt")
    with pytest.raises(InputError, match="--column needs --file"):
        read_texts(["x"], column="text")
    with pytest.raises(InputError, match="file not found"):
        read_texts(file=tmp_path / "missing.txt")
