"""The real encoder on the bundled all-MiniLM-L6-v2 (loaded once per session)."""

from __future__ import annotations

import shutil
import threading
from pathlib import Path

import numpy as np
import pytest
import torch

from faq_search.corpus import read_faq
from faq_search.encoding.encoder import BertEncoder, resolve_model
from faq_search.encoding.settings import EncoderSettings
from faq_search.errors import InputError, ModelError

pytestmark = pytest.mark.model

TEXTS = [
    "How can I cancel my order?",
    "Refunds reach your card within five business days after we receive the parcel.",
    "hi",
    "Our customer service team answers e-mails from Monday to Friday between eight and six, "
    "and on Saturdays until two in the afternoon; on public holidays replies may take longer.",
]


def full_model_reference(texts: list[str], hidden_index: int) -> np.ndarray:
    """Masked mean of output_hidden_states[hidden_index] of the complete, untouched model."""
    import transformers

    path, _ = resolve_model("default")
    tokenizer = transformers.AutoTokenizer.from_pretrained(path, local_files_only=True)
    model = transformers.AutoModel.from_pretrained(path, local_files_only=True).eval()
    batch = tokenizer(texts, padding=True, truncation=True, max_length=256, return_tensors="pt")
    with torch.no_grad():
        hidden = model(**batch, output_hidden_states=True).hidden_states[hidden_index]
    mask = batch["attention_mask"].unsqueeze(-1).float()
    pooled = (hidden * mask).sum(1) / mask.sum(1)
    return torch.nn.functional.normalize(pooled, dim=-1).numpy()


def test_layer_minus_two_equals_full_model_hidden_states(real_encoder: BertEncoder) -> None:
    ours = real_encoder.encode(TEXTS)
    reference = full_model_reference(TEXTS, -2)
    assert ours.dtype == np.float32
    assert ours.shape == (len(TEXTS), 384)
    np.testing.assert_allclose(ours, reference, atol=1e-5)


def test_blocks_after_the_chosen_layer_are_not_run(real_encoder: BertEncoder) -> None:
    assert real_encoder.num_layers == 6
    assert real_encoder.blocks_run == 5
    assert len(real_encoder.model.encoder.layer) == 5
    seen: list[int] = []
    hooks = [
        block.register_forward_hook(lambda module, args, output, i=i: seen.append(i))
        for i, block in enumerate(real_encoder.model.encoder.layer)
    ]
    try:
        real_encoder.encode(["one forward pass"])
    finally:
        for hook in hooks:
            hook.remove()
    assert seen == [0, 1, 2, 3, 4]


def test_layer_minus_one_differs_and_matches_its_reference() -> None:
    last = BertEncoder(EncoderSettings(layer="-1", precision="fp32"))
    assert last.blocks_run == 6
    vectors = last.encode(TEXTS)
    np.testing.assert_allclose(vectors, full_model_reference(TEXTS, -1), atol=1e-5)
    second_last = full_model_reference(TEXTS, -2)
    assert np.abs(vectors - second_last).max() > 1e-2


def test_output_is_unit_length_and_in_input_order(real_encoder: BertEncoder) -> None:
    together = real_encoder.encode(TEXTS)
    np.testing.assert_allclose(np.linalg.norm(together, axis=1), 1.0, atol=1e-5)
    for i, text in enumerate(TEXTS):
        alone = real_encoder.encode([text])[0]
        assert float(alone @ together[i]) > 0.9999


@pytest.mark.parametrize("precision", ["fp32", "auto"])
def test_batch_invariance(precision: str, real_encoder: BertEncoder) -> None:
    encoder = real_encoder if precision == "fp32" else BertEncoder(EncoderSettings(precision="auto"))
    target = "Where is my parcel? It has not arrived yet."
    alone = encoder.encode([target])[0]
    padding_mates = ["short", *TEXTS, "a much longer sentence " * 20, target]
    encoder.batch_size = 3
    try:
        in_batch = encoder.encode(padding_mates)[-1]
    finally:
        encoder.batch_size = 64
    assert float(alone @ in_batch) > 0.9999


def test_bf16_stays_within_cosine_0999_of_fp32(real_encoder: BertEncoder, sample_faq: Path) -> None:
    texts = [e.answer for e in read_faq(sample_faq)] + [q for e in read_faq(sample_faq) for q in e.questions]
    bf16 = BertEncoder(EncoderSettings(precision="bf16"))
    cosines = np.sum(bf16.encode(texts) * real_encoder.encode(texts), axis=1)
    assert cosines.min() >= 0.999


def test_threads_get_the_same_vectors(real_encoder: BertEncoder) -> None:
    expected = real_encoder.encode(TEXTS)
    results: list[np.ndarray] = []
    errors: list[BaseException] = []

    def work() -> None:
        try:
            results.append(real_encoder.encode(TEXTS))
        except BaseException as exc:  # pragma: no cover - reported below
            errors.append(exc)

    threads = [threading.Thread(target=work) for _ in range(6)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors
    for got in results:
        np.testing.assert_allclose(got, expected, atol=1e-5)


def word_vector(encoder: BertEncoder, sentence: str, word: str) -> np.ndarray:
    """The layer -2 vector of ``word``'s word piece in ``sentence`` (word must be a single piece)."""
    ids, _ = encoder.tokenize([sentence])
    pieces = encoder.tokenizer.convert_ids_to_tokens(ids[0])
    states, _ = encoder.hidden_states(ids)
    vector = states[encoder.layer_indices[0]][0, pieces.index(word)].float().numpy()
    return vector / np.linalg.norm(vector)


def test_contextual_vectors_separate_word_senses(real_encoder: BertEncoder) -> None:
    river = ["We sat on the bank of the river and watched the boats.", "The canoe drifted towards the muddy bank."]
    money = ["I need to call my bank about a blocked card.", "The bank charged a fee for the transfer."]
    vectors = {s: word_vector(real_encoder, s, "bank") for s in river + money}
    same = [float(vectors[a] @ vectors[b]) for a, b in [(river[0], river[1]), (money[0], money[1])]]
    different = [float(vectors[a] @ vectors[b]) for a in river for b in money]
    assert min(same) > max(different)


def test_model_directory_gives_the_same_vectors(tmp_path: Path, real_encoder: BertEncoder) -> None:
    source, _ = resolve_model("default")
    copy = tmp_path / "my-minilm"
    shutil.copytree(source, copy)
    from_dir = BertEncoder(EncoderSettings(model=str(copy), precision="fp32"))
    assert from_dir.identity.weights_sha256 == real_encoder.identity.weights_sha256
    assert from_dir.model_name == "my-minilm"
    np.testing.assert_allclose(from_dir.encode(TEXTS), real_encoder.encode(TEXTS), atol=1e-6)


def test_other_bert_family_directory(tmp_path: Path) -> None:
    """A different (tiny, randomly initialised) BERT with its own size works through the same option."""
    import transformers

    source, _ = resolve_model("default")
    config = transformers.BertConfig(
        vocab_size=30522, hidden_size=32, num_hidden_layers=3, num_attention_heads=2, intermediate_size=64
    )
    torch.manual_seed(0)
    transformers.BertModel(config).save_pretrained(tmp_path / "tiny-bert")
    transformers.AutoTokenizer.from_pretrained(source).save_pretrained(tmp_path / "tiny-bert")
    tiny = BertEncoder(EncoderSettings(model=str(tmp_path / "tiny-bert"), precision="fp32"))
    assert tiny.dimension == 32
    assert tiny.blocks_run == 2
    vectors = tiny.encode(TEXTS)
    assert vectors.shape == (len(TEXTS), 32)
    np.testing.assert_allclose(np.linalg.norm(vectors, axis=1), 1.0, atol=1e-5)


@pytest.mark.parametrize(
    ("settings", "dimension"),
    [
        (EncoderSettings(pooling="mean_max", precision="fp32"), 768),
        (EncoderSettings(layer="concat-last-4", precision="fp32"), 4 * 384),
        (EncoderSettings(layer="sum-last-4", pooling="max", precision="fp32"), 384),
        (EncoderSettings(pooling="cls", include_special=False, precision="fp32"), 384),
    ],
)
def test_pooling_and_layer_choices_change_the_width(settings: EncoderSettings, dimension: int) -> None:
    encoder = BertEncoder(settings)
    vectors = encoder.encode(TEXTS[:2])
    assert encoder.dimension == dimension
    assert vectors.shape == (2, dimension)


def test_excluding_special_tokens_changes_the_mean(real_encoder: BertEncoder) -> None:
    without = BertEncoder(EncoderSettings(include_special=False, precision="fp32"))
    a, b = without.encode(TEXTS[:1])[0], real_encoder.encode(TEXTS[:1])[0]
    assert 0.5 < float(a @ b) < 0.9999


def test_bad_settings_are_refused() -> None:
    with pytest.raises(InputError, match="out of range"):
        BertEncoder(EncoderSettings(layer="-9"))
    with pytest.raises(InputError, match="window"):
        BertEncoder(EncoderSettings(max_seq_len=1024))
    with pytest.raises(ModelError, match="not found"):
        BertEncoder(EncoderSettings(model="./no/such/model-dir"))


@pytest.mark.model
def test_windows_from_the_bare_tokenizer_equal_transformers_windows(real_encoder: BertEncoder) -> None:
    from faq_search.encoding.windows import piece_counts, special_tokens, split_windows

    bare, full = real_encoder.window_tokenizer, real_encoder.tokenizer
    assert bare is not full and hasattr(bare, "encode_batch")  # the path that avoids importing transformers
    texts = [
        "Short one.",
        " ".join(f"Größe {n}: Ünïcödé façade naïve café — emoji 🚚📦 and 東京 words, step {n}." for n in range(40)),
        "Returns are free within 30 days. " * 60,
        "supercalifragilisticexpialidocious " * 50,
    ]
    assert special_tokens(bare) == special_tokens(full) == 2
    assert piece_counts(bare, texts) == piece_counts(full, texts)
    assert max(piece_counts(bare, texts)) > 256  # no truncation on either side
    for text in texts:
        assert split_windows(bare, text, 64) == split_windows(full, text, 64)
    assert len(split_windows(bare, texts[1], 64)) > 1
