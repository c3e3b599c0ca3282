"""Embeddings as a product: sentence, token and word vectors, their files and the `embed` command.

Fast tests (no model) cover option checks, text reading, window planning and
the writers; tests marked ``model`` run the bundled all-MiniLM-L6-v2.
"""

from __future__ import annotations

import io
import itertools
import json
import re
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from typer.testing import CliRunner

from faq_search.cli import app
from faq_search.encoding.settings import EncoderSettings, Pooling
from faq_search.errors import InputError
from faq_search.export.embeddings import (
    MERGERS,
    Embeddings,
    Level,
    SentenceEmbedding,
    TokenEmbedding,
    WordEmbedding,
    WordMerge,
    _plan_spans,
    check_options,
    check_texts,
    embed,
    read_texts,
    sentence_embeddings,
    token_embeddings,
    word_embeddings,
)

model = pytest.mark.model

WORD_RE = re.compile(r"\w+|[^\w\s]")
LONG_TEXT = (
    "Returns are free within thirty days of delivery. Pack the item in its original box, print the label "
    "from your account page and drop the parcel at any post office. Refunds reach your card within five business "
    "days after we receive the parcel; exchanges ship as soon as the returned item is checked. Items that were "
    "worn, washed or damaged cannot be returned, and gift cards are not refundable."
)
SPLIT_WORDS = "Tokenization of unbelievably long words, don't you think? Café naïve."


def cosine(a: np.ndarray, b: np.ndarray) -> float:
    return float(a @ b / (np.linalg.norm(a) * np.linalg.norm(b)))


def invoke(*args: str, stdin: str | None = None):  # type: ignore[no-untyped-def]
    return CliRunner().invoke(app, ["embed", *args], input=stdin)


def one_line_error(result, *needles: str) -> None:  # type: ignore[no-untyped-def]
    assert result.exit_code == 2, result.output
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    assert lines[0].startswith("faq-search: error:")
    for needle in needles:
        assert needle in lines[0]


# --------------------------------------------------------------------------- fast: options, texts, windows


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


def test_windows_cut_at_word_starts_and_cover_everything() -> None:
    # 40 words of 3 pieces each: 120 pieces in windows of at most 20
    word_ids = [w for w in range(40) for _ in range(3)]
    spans = _plan_spans(word_ids, 20, windows=True)
    assert spans[0][0] == 0 and spans[-1][1] == 120
    for (start, end), (next_start, _) in itertools.pairwise(spans):
        assert end - start <= 20
        assert start % 3 == 0 and end % 3 == 0  # never inside a word
        assert start < next_start < end  # overlapping, always moving on
    assert _plan_spans(word_ids, 20, windows=False) == [(0, 18)]
    assert _plan_spans(word_ids[:15], 20, windows=True) == [(0, 15)]
    # one word longer than a window is cut where it must be
    assert _plan_spans([0] * 50, 20, windows=False) == [(0, 20)]
    assert _plan_spans([0] * 50, 20, windows=True)[-1][1] == 50


# --------------------------------------------------------------------------- fast: records and writers


def fabricated(level: Level) -> Embeddings:
    """Small hand-made results (no model) for the writers."""
    rng = np.random.default_rng(0)
    records: tuple[SentenceEmbedding, ...] | tuple[TokenEmbedding, ...] | tuple[WordEmbedding, ...]
    if level is Level.SENTENCE:
        records = tuple(
            SentenceEmbedding(text=t, vector=rng.standard_normal(4).astype(np.float32), tokens=("a",), truncated=False)
            for t in ("one", "two")
        )
    elif level is Level.TOKEN:
        records = (
            TokenEmbedding(
                text="hi there",
                tokens=("[CLS]", "hi", "there", "[SEP]"),
                offsets=((0, 0), (0, 2), (3, 8), (0, 0)),
                word_index=(None, 0, 1, None),
                vectors=rng.standard_normal((4, 4)).astype(np.float32),
                windows=1,
                dropped_tokens=0,
                truncated_at=None,
            ),
            TokenEmbedding(
                text="x",
                tokens=(),
                offsets=(),
                word_index=(),
                vectors=np.zeros((0, 4), np.float32),
                windows=1,
                dropped_tokens=3,
                truncated_at=0,
            ),
        )
    else:
        records = (
            WordEmbedding(
                text="unbelievable, really",
                words=("unbelievable", ",", "really"),
                offsets=((0, 12), (12, 13), (14, 20)),
                pieces=(("un", "##believable"), (",",), ("really",)),
                vectors=rng.standard_normal((3, 4)).astype(np.float32),
                merge=WordMerge.MEAN,
                windows=1,
                dropped_words=(),
                truncated_at=None,
            ),
        )
    return Embeddings(
        level=level,
        model_name="fake",
        layer="-2",
        pooling=Pooling.MEAN if level is Level.SENTENCE else None,
        merge=WordMerge.MEAN if level is Level.WORD else None,
        dimension=4,
        normalized=level is Level.SENTENCE,
        max_seq_len=256,
        records=records,
    )


@pytest.mark.parametrize("level", list(Level))
def test_jsonl_and_parquet_round_trip(tmp_path: Path, level: Level) -> None:
    import pyarrow.parquet as pq

    result = fabricated(level)
    lines = result.save(tmp_path / "out.jsonl").read_text(encoding="utf-8").splitlines()
    assert [json.loads(line) for line in lines] == [r.to_dict() for r in result.records]

    table = pq.read_table(result.save(tmp_path / "out.parquet"))
    assert json.loads(table.schema.metadata[b"faq_search"])["level"] == level.value
    rows = table.to_pylist()
    assert [row["text"] for row in rows] == [r.text for r in result.records]
    for row, record in zip(rows, result.records, strict=True):
        if isinstance(record, SentenceEmbedding):
            np.testing.assert_array_equal(np.array(row["vector"], np.float32), record.vector)
        else:
            got = np.array(row["vectors"], np.float32).reshape(-1, 4)
            np.testing.assert_array_equal(got, record.vectors)
            assert [tuple(s) for s in row["offsets"]] == list(record.offsets)
    assert not list(tmp_path.glob(".*tmp*"))  # written through a temporary file, then renamed


def test_npy_is_sentence_level_only(tmp_path: Path) -> None:
    result = fabricated(Level.SENTENCE)
    np.testing.assert_array_equal(np.load(result.save(tmp_path / "s.npy")), result.matrix())
    for level in (Level.TOKEN, Level.WORD):
        with pytest.raises(InputError, match=r"write \.jsonl or \.parquet instead"):
            fabricated(level).save(tmp_path / "t.npy")
    with pytest.raises(InputError, match=r"unknown output format '\.csv'"):
        result.save(tmp_path / "s.csv")
    with pytest.raises(InputError, match="does not exist"):
        result.save(tmp_path / "no" / "s.npy")


def test_summary_and_warning_of_a_cut_text() -> None:
    result = fabricated(Level.TOKEN)
    assert result.vector_count == 4 and result.truncated_count == 1
    warning = result.truncation_warning()
    assert warning is not None and "1 of 2 texts" in warning and "3 word pieces" in warning
    text = result.summary(show_tokens=True)
    assert "4 token vectors of 4 dims (not normalised)" in text
    assert "[CLS]" in text and "3:8" in text and "3 pieces past the window" in text
    assert fabricated(Level.SENTENCE).truncation_warning() is None


def test_records_are_read_only() -> None:
    record = fabricated(Level.TOKEN).records[0]
    with pytest.raises(AttributeError):
        record.text = "changed"  # type: ignore[misc]


# --------------------------------------------------------------------------- fast: the command without a model


def test_embed_help_lists_the_choices_and_does_not_load_torch() -> None:
    result = CliRunner().invoke(app, ["embed", "--help"])
    assert result.exit_code == 0
    for option in ["--level", "--layer", "--pooling", "--merge", "--out", "--show-tokens", "--truncate", "--model"]:
        assert option in result.output
    code = (
        "import sys\nfrom typer.testing import CliRunner\nfrom faq_search.cli import app\n"
        "assert CliRunner().invoke(app, ['embed', '--help']).exit_code == 0\n"
        "sys.exit(1 if {'torch', 'transformers', 'numpy'} & set(sys.modules) else 0)\n"
    )
    assert subprocess.run([sys.executable, "-c", code], timeout=120).returncode == 0


@pytest.mark.parametrize(
    ("args", "needles"),
    [
        ([], ["no text to embed"]),
        (["  "], ["text 1 is empty"]),
        (["x", "--level", "token", "--out", "t.npy"], [".npy", "write .jsonl or .parquet"]),
        (["x", "--level", "word", "--pooling", "max"], ["--pooling applies to --level sentence only"]),
        (["x", "--merge", "first"], ["--merge applies to --level word only"]),
        (["x", "--truncate"], ["sentence level always cuts"]),
        (["x", "--layer", "top"], ["layer spec 'top'"]),
    ],
)
def test_embed_bad_input_is_one_line_exit_2(args: list[str], needles: list[str]) -> None:
    one_line_error(invoke(*args), *needles)


def test_embed_unknown_level_exit_2() -> None:
    result = invoke("x", "--level", "paragraph")
    assert result.exit_code == 2
    message = " ".join(result.stderr.replace("│", " ").split())  # typer's own choice check, in a box
    assert "'paragraph' is not one of 'sentence', 'token', 'word'" in message


# --------------------------------------------------------------------------- the real model


@pytest.fixture(scope="module")
def sum4():  # type: ignore[no-untyped-def]
    """The bundled model with the sum of the last four layers (the BERT paper's best feature choice)."""
    from faq_search.encoding.encoder import BertEncoder

    return BertEncoder(EncoderSettings(layer="sum-last-4", precision="fp32"))


@pytest.fixture(scope="module")
def short():  # type: ignore[no-untyped-def]
    """The bundled model with a 32-piece window, so that a paragraph needs several."""
    from faq_search.encoding.encoder import BertEncoder

    return BertEncoder(EncoderSettings(max_seq_len=32, precision="fp32"))


def sense_vectors(records: list[TokenEmbedding] | list[WordEmbedding], word: str) -> list[np.ndarray]:
    out = []
    for record in records:
        labels = record.tokens if isinstance(record, TokenEmbedding) else [w.lower() for w in record.words]
        out.append(record.vectors[list(labels).index(word)])
    return out


def separates_senses(first: list[np.ndarray], second: list[np.ndarray]) -> bool:
    same = [cosine(*first), cosine(*second)]
    different = [cosine(a, b) for a in first for b in second]
    return min(same) > max(different)


RIVER = ["We sat on the bank of the river and watched the boats.", "The canoe drifted towards the muddy bank."]
MONEY = ["I need to call my bank about a blocked card.", "The bank charged a fee for the transfer."]
TRAFFIC = [
    "Traffic jams on the motorway made us two hours late.",
    "Rush hour jams block the city centre every morning.",
]
FRUIT = ["Grandma makes strawberry and apricot jams every summer.", "We spread homemade jams on toast for breakfast."]
DOG = ["The dog barks loudly whenever the postman arrives.", "Our puppy barks at every cat in the street."]
TREE = ["The barks of these old oak trees are thick and rough.", "Birch barks peel off the trunk in thin white strips."]


@model
def test_token_level_separates_word_senses(sum4) -> None:  # type: ignore[no-untyped-def]
    river = sense_vectors(token_embeddings(sum4, RIVER), "bank")
    money = sense_vectors(token_embeddings(sum4, MONEY), "bank")
    assert separates_senses(river, money)


@model
@pytest.mark.parametrize("merge", list(WordMerge))
@pytest.mark.parametrize(("word", "first", "second"), [("jams", TRAFFIC, FRUIT), ("barks", DOG, TREE)])
def test_word_level_separates_senses_of_a_split_word(sum4, merge, word, first, second) -> None:  # type: ignore[no-untyped-def]
    records = word_embeddings(sum4, first + second, merge=merge)
    assert all(len(r.pieces[[w.lower() for w in r.words].index(word)]) == 2 for r in records)  # jam ##s, bark ##s
    vectors = sense_vectors(records, word)
    assert separates_senses(vectors[:2], vectors[2:])


@model
@pytest.mark.parametrize("merge", list(WordMerge))
def test_word_vector_is_the_merge_of_its_piece_vectors(sum4, merge: WordMerge) -> None:  # type: ignore[no-untyped-def]
    texts = [SPLIT_WORDS, "An unbelievably unremarkable hippopotamus."]
    tokens = token_embeddings(sum4, texts)
    words = word_embeddings(sum4, texts, merge=merge)
    multi = 0
    for token_record, word_record in zip(tokens, words, strict=True):
        for index, word_vector in enumerate(word_record.vectors):
            rows = [i for i, w in enumerate(token_record.word_index) if w == index]
            assert tuple(token_record.tokens[i] for i in rows) == word_record.pieces[index]
            piece_vectors = token_record.vectors[rows]
            expected = {"first": piece_vectors[0], "last": piece_vectors[-1], "mean": piece_vectors.mean(axis=0)}
            np.testing.assert_allclose(word_vector, expected[merge.value], rtol=1e-6, atol=1e-5)
            np.testing.assert_allclose(word_vector, MERGERS[merge](piece_vectors), rtol=1e-6, atol=1e-6)
            multi += len(rows) > 1
    assert multi >= 4  # tokenization, unbelievably (x2), unremarkable, hippopotamus...
    assert tokens[0].vectors.shape[1] == 384  # summed layers keep the hidden width


@model
def test_offsets_slice_back_to_tokens_and_words(real_encoder) -> None:  # type: ignore[no-untyped-def]
    texts = [SPLIT_WORDS, "  Spaces   and\ttabs,  kept\naligned!  "]
    for record in token_embeddings(real_encoder, texts, special=False):
        for token, (start, end) in zip(record.tokens, record.offsets, strict=True):
            piece = record.text[start:end].lower().replace("é", "e").replace("ï", "i")  # uncased, accents stripped
            assert piece == token.removeprefix("##")
    for record in word_embeddings(real_encoder, texts):
        assert list(record.words) == WORD_RE.findall(record.text)  # whitespace and punctuation split
        assert [record.text[s:e] for s, e in record.offsets] == list(record.words)
        assert record.vectors.shape == (len(record.words), 384)
        assert not record.vectors.flags.writeable


@model
def test_token_level_is_the_hidden_state_of_each_piece_and_never_padding(real_encoder) -> None:  # type: ignore[no-untyped-def]
    short_text, long_text = "Where is my parcel?", LONG_TEXT
    together = token_embeddings(real_encoder, [short_text, long_text])
    ids, _ = real_encoder.tokenize([short_text])
    states, _ = real_encoder.hidden_states(ids)
    direct = states[real_encoder.layer_indices[0]][0].float().numpy()
    record = together[0]
    assert record.tokens == tuple(real_encoder.tokenizer.convert_ids_to_tokens(ids[0]))
    assert record.tokens[0] == "[CLS]" and record.tokens[-1] == "[SEP]"
    assert record.word_index[0] is None and record.offsets[-1] == (0, 0)
    assert record.vectors.shape == (len(ids[0]), 384)  # one per piece: none for the padding of the long mate
    np.testing.assert_allclose(record.vectors, direct, atol=1e-4)
    assert np.linalg.norm(record.vectors, axis=1).min() > 2  # raw hidden states, not normalised

    without = token_embeddings(real_encoder, [short_text], special=False)[0]
    assert without.tokens == record.tokens[1:-1]
    np.testing.assert_allclose(without.vectors, record.vectors[1:-1], atol=1e-4)


@model
def test_sentence_level_is_the_encoders_vector_with_its_tokens(real_encoder) -> None:  # type: ignore[no-untyped-def]
    texts = ["How can I cancel my order?", "hi"]
    result = embed(real_encoder, texts)
    np.testing.assert_allclose(result.matrix(), real_encoder.encode(texts), atol=1e-6)
    assert result.normalized and result.pooling is Pooling.MEAN and result.dimension == 384
    first = result.records[0]
    assert isinstance(first, SentenceEmbedding)
    assert first.tokens == ("[CLS]", "how", "can", "i", "cancel", "my", "order", "?", "[SEP]")
    assert result.truncation_warning() is None
    alone = sentence_embeddings(real_encoder, ["hi"])[0]
    assert alone.tokens == ("[CLS]", "hi", "[SEP]") and not alone.truncated
    np.testing.assert_allclose(alone.vector, result.matrix()[1], atol=1e-5)


@model
def test_long_texts_sentence_level_is_cut_with_a_count(short) -> None:  # type: ignore[no-untyped-def]
    result = embed(short, [LONG_TEXT, "short one", LONG_TEXT + " again"])
    assert [r.truncated for r in result.records] == [True, False, True]
    assert len(result.records[0].tokens) == 32  # type: ignore[union-attr]
    warning = result.truncation_warning()
    assert warning is not None and warning.startswith("2 of 3 texts are longer than the 32-piece window")


@model
def test_long_texts_token_level_run_in_windows(short, real_encoder) -> None:  # type: ignore[no-untyped-def]
    windowed = token_embeddings(short, [LONG_TEXT], special=False)[0]
    whole = token_embeddings(real_encoder, [LONG_TEXT], special=False)[0]  # 256-piece window: one run
    assert whole.windows == 1 and windowed.windows > 2
    assert windowed.tokens == whole.tokens and windowed.offsets == whole.offsets
    assert windowed.dropped_tokens == 0 and windowed.truncated_at is None
    cosines = [cosine(a, b) for a, b in zip(windowed.vectors, whole.vectors, strict=True)]
    assert np.median(cosines) > 0.9 and min(cosines) > 0.6  # each piece keeps context on both sides
    # the opening pieces take their vectors from the first window, which is the text cut at the window
    cut = token_embeddings(short, [LONG_TEXT], special=False, windows=False)[0]
    np.testing.assert_allclose(windowed.vectors[:6], cut.vectors[:6], atol=1e-5)


@model
def test_long_texts_word_level_windows_or_reported_cut(short) -> None:  # type: ignore[no-untyped-def]
    all_words = WORD_RE.findall(LONG_TEXT)
    windowed = word_embeddings(short, [LONG_TEXT])[0]
    assert list(windowed.words) == all_words and windowed.dropped_words == ()
    assert [LONG_TEXT[s:e] for s, e in windowed.offsets] == all_words

    result = embed(short, [LONG_TEXT, "A short text."], Level.WORD, windows=False)
    cut = result.records[0]
    assert isinstance(cut, WordEmbedding) and cut.windows == 1
    assert 0 < len(cut.words) < len(all_words)
    assert list(cut.words) + list(cut.dropped_words) == all_words  # nothing silently lost
    assert cut.truncated_at is not None and LONG_TEXT[cut.truncated_at :].startswith(cut.dropped_words[0])
    assert sum(len(p) for p in cut.pieces) <= 30  # 32 minus [CLS] and [SEP]
    warning = result.truncation_warning()
    assert warning is not None and f"({len(cut.dropped_words)} words not embedded)" in warning


@model
def test_a_word_longer_than_the_window(short) -> None:  # type: ignore[no-untyped-def]
    word = "qzxjvk" * 6  # 36 word pieces; the window holds 30
    text = f"Hello {word} world"
    tokens = token_embeddings(short, [text], special=False)[0]
    assert tokens.windows > 1 and tokens.dropped_tokens == 0 and len(tokens.tokens) == 38
    assert word_embeddings(short, [text])[0].words == ("Hello", word, "world")
    cut = word_embeddings(short, [text], windows=False)[0]
    assert cut.words == ("Hello",) and cut.dropped_words == (word, "world") and cut.truncated_at == 6


@model
def test_concat_of_layers_widens_token_vectors(real_encoder) -> None:  # type: ignore[no-untyped-def]
    from faq_search.encoding.encoder import BertEncoder

    concat = BertEncoder(EncoderSettings(layer="-1,-2", precision="fp32"))
    record = token_embeddings(concat, ["hello world"])[0]
    assert record.vectors.shape == (4, 768)
    single = token_embeddings(real_encoder, ["hello world"])[0]
    np.testing.assert_allclose(record.vectors[:, 384:], single.vectors, atol=1e-4)  # second part is layer -2
    assert embed(concat, ["hello world"], "token").dimension == 768


# --------------------------------------------------------------------------- the command on real models


@model
def test_embed_command_sentence_npy_and_summary(tmp_path: Path, real_encoder) -> None:  # type: ignore[no-untyped-def]
    out = tmp_path / "s.npy"
    result = invoke("How can I cancel my order?", "hi", "--out", str(out), "--precision", "fp32")
    assert result.exit_code == 0, result.output
    assert "Wrote 2 sentence vectors of 384 dims for 2 texts" in result.stdout
    np.testing.assert_allclose(np.load(out), real_encoder.encode(["How can I cancel my order?", "hi"]), atol=1e-5)

    shown = invoke("-", "--show-tokens", "--pooling", "cls", stdin="first text\nsecond text\n")
    assert shown.exit_code == 0, shown.output
    assert "cls pooling: 2 sentence vectors of 384 dims (unit length)" in shown.stdout
    assert "tokens: [CLS] first text [SEP]" in shown.stdout


@model
def test_embed_command_token_and_word_files(tmp_path: Path) -> None:
    texts = tmp_path / "texts.csv"
    texts.write_text("id,text\n1,Tokenization is fun.\n2," + LONG_TEXT.replace(",", "") + "\n", encoding="utf-8")
    out = tmp_path / "w.parquet"
    result = invoke(
        "--file", str(texts), "--level", "word", "--merge", "first", "--layer", "concat-last-4",
        "--max-seq-len", "32", "--truncate", "--out", str(out), "--json",
    )  # fmt: skip
    assert result.exit_code == 0, result.output
    meta = json.loads(result.stdout)
    assert meta["level"] == "word" and meta["merge"] == "first" and meta["dimension"] == 4 * 384
    assert meta["truncated_texts"] == 1
    assert "faq-search: warning: 1 of 2 texts were cut at the 32-piece window" in result.stderr
    import pyarrow.parquet as pq

    rows = pq.read_table(out).to_pylist()
    assert rows[0]["words"] == ["Tokenization", "is", "fun", "."] and rows[1]["dropped_words"]
    assert len(rows[0]["vectors"]) == 4 and len(rows[0]["vectors"][0]) == 4 * 384

    shown = invoke("Tokenization is fun.", "--level", "token", "--show-tokens", "--no-special", "--json")
    data = json.loads(shown.stdout)
    record = data["records"][0]
    assert record["tokens"] == ["token", "##ization", "is", "fun", "."]
    assert record["offsets"][1] == [5, 12] and len(record["vectors"][0]) == 384
    assert data["normalized"] is False


@model
def test_embed_command_layer_out_of_range(tmp_path: Path) -> None:
    one_line_error(invoke("x", "--level", "token", "--layer", "-9"), "layer -9 is out of range", "6 layers")


@model
def test_embed_command_with_a_copied_model_directory(tmp_path: Path, real_encoder) -> None:  # type: ignore[no-untyped-def]
    from faq_search.encoding.encoder import resolve_model

    copy = tmp_path / "my-minilm"
    shutil.copytree(resolve_model("default")[0], copy)
    out = tmp_path / "t.jsonl"
    result = invoke(
        "Where is my parcel?", "--model", str(copy), "--level", "token", "--out", str(out), "--precision", "fp32"
    )
    assert result.exit_code == 0, result.output
    record = json.loads(out.read_text(encoding="utf-8").splitlines()[0])
    expected = token_embeddings(real_encoder, ["Where is my parcel?"])[0]
    assert tuple(record["tokens"]) == expected.tokens
    np.testing.assert_allclose(np.array(record["vectors"], np.float32), expected.vectors, atol=1e-4)


@model
def test_embed_command_with_another_bert_family_directory(tmp_path: Path) -> None:
    """A tiny randomly initialised BERT (3 layers, 32 wide) works at every level through --model."""
    import torch
    import transformers

    from faq_search.encoding.encoder import resolve_model

    tiny = tmp_path / "tiny-bert"
    config = transformers.BertConfig(
        vocab_size=30522, hidden_size=32, num_hidden_layers=3, num_attention_heads=2, intermediate_size=64
    )
    torch.manual_seed(0)
    transformers.BertModel(config).save_pretrained(tiny)
    transformers.AutoTokenizer.from_pretrained(resolve_model("default")[0]).save_pretrained(tiny)

    words = json.loads(invoke("unbelievably tiny", "--model", str(tiny), "--level", "word", "--json").stdout)
    assert words["dimension"] == 32 and words["model"] == "tiny-bert"
    assert words["records"][0]["words"] == ["unbelievably", "tiny"]
    summed = json.loads(
        invoke("x y", "--model", str(tiny), "--level", "token", "--layer", "sum-last-4", "--json").stdout
    )
    assert summed["dimension"] == 32 and len(summed["records"][0]["vectors"]) == 4
    sentence = json.loads(invoke("x y", "--model", str(tiny), "--pooling", "mean_max", "--json").stdout)
    assert sentence["dimension"] == 64
    one_line_error(invoke("x", "--model", str(tiny), "--layer", "5"), "layer 5 is out of range", "3 layers")
