"""Sentence, token and word vectors from the bundled model (tests marked ``model``)."""

from __future__ import annotations

import numpy as np
import pytest

from faq_search.encoding.settings import EncoderSettings, Pooling
from faq_search.export.compute import combine_layers
from faq_search.export.embeddings import (
    MERGERS,
    Level,
    SentenceEmbedding,
    TokenEmbedding,
    WordEmbedding,
    WordMerge,
    embed,
    sentence_embeddings,
    token_embeddings,
    word_embeddings,
)
from tests.export.samples import LONG_TEXT, SPLIT_WORDS, WORD_RE, cosine

model = pytest.mark.model


@pytest.mark.parametrize(
    ("indices", "combine"), [([4], "concat"), ([1, 3], "concat"), ([3], "sum"), ([0, 2, 3], "sum")]
)
def test_layers_combine_per_piece_as_pooling_combines_them(indices: list[int], combine: str) -> None:
    import torch

    generator = torch.Generator().manual_seed(0)
    states = tuple(torch.randn(2, 5, 3, generator=generator) for _ in range(5))
    combined = combine_layers(states, indices, combine)
    chosen = [states[i] for i in indices]
    expected = torch.stack(chosen).sum(dim=0) if combine == "sum" else torch.cat(chosen, dim=-1)
    assert combined.shape == expected.shape
    assert torch.equal(combined, expected)  # exactly: a one-piece mean is the piece itself


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
