"""The ONNX query encoder: the exported graph gives torch's fp32 vectors, for every pooling and layer choice."""

from __future__ import annotations

import numpy as np
import pytest

from faq_search.encoding.encoder import BertEncoder
from faq_search.encoding.onnx_export import GRAPH_FILE, META_FILE, TOKENIZER_FILE, onnx_files, read_meta
from faq_search.encoding.onnx_runtime import OnnxEncoder
from faq_search.encoding.settings import EncoderSettings
from faq_search.errors import ModelError

pytestmark = pytest.mark.model

AGREEMENT = 0.9999  # the bar: ONNX vs torch fp32, least cosine

TEXTS = [
    "my parcel never showed up, what now?",
    "How do I reset my password?",
    "refund",
    "Can I change the delivery address after I placed the order, or is it too late once it shipped?",
    "Ünïcödé and emoji 🙂 still tokenize",
    " ".join(["a long answer about returns and refunds"] * 60),  # past max_seq_len: truncated as torch truncates
]


@pytest.fixture(scope="module")
def default_files(real_encoder: BertEncoder) -> dict[str, bytes]:
    return onnx_files(real_encoder)


def least_cosine(a: np.ndarray, b: np.ndarray) -> float:
    return float(np.sum(a * b, axis=1).min())


def test_default_graph_agrees_with_torch_fp32(real_encoder: BertEncoder, default_files: dict[str, bytes]) -> None:
    onnx = OnnxEncoder(default_files)
    got, want = onnx.encode(TEXTS), real_encoder.encode(TEXTS)
    assert got.shape == want.shape == (len(TEXTS), 384) and got.dtype == np.float32
    assert least_cosine(got, want) >= AGREEMENT
    assert np.allclose(np.linalg.norm(got, axis=1), 1.0, atol=1e-5)
    # one text alone and inside a batch of mixed lengths (padding) get the same vector
    alone = np.vstack([onnx.encode([text]) for text in TEXTS])
    assert least_cosine(alone, got) >= 0.99999


@pytest.mark.parametrize(
    "settings",
    [
        EncoderSettings(precision="fp32", pooling="max"),
        EncoderSettings(precision="fp32", pooling="cls", layer="-1"),
        EncoderSettings(precision="fp32", pooling="last", include_special=False),
        EncoderSettings(precision="fp32", pooling="mean_max", layer="sum-last-4"),
        EncoderSettings(precision="fp32", layer="-1,-3", include_special=False, max_seq_len=32),
    ],
    ids=lambda s: f"{s.pooling.value}-{s.layer}-special{s.include_special}-{s.max_seq_len}",
)
def test_every_pooling_and_layer_choice_agrees(settings: EncoderSettings) -> None:
    torch_encoder = BertEncoder(settings)
    onnx = OnnxEncoder(onnx_files(torch_encoder))
    assert onnx.identity == torch_encoder.identity
    assert onnx.windows.token_lengths(TEXTS) == torch_encoder.token_lengths(TEXTS)
    assert least_cosine(onnx.encode(TEXTS), torch_encoder.encode(TEXTS)) >= AGREEMENT


def test_blocks_above_the_pooled_layer_are_not_in_the_graph(default_files: dict[str, bytes]) -> None:
    import onnx

    model = onnx.load_from_string(default_files[GRAPH_FILE])
    norms = sum(node.op_type == "LayerNormalization" for node in model.graph.node)
    assert norms == 1 + 2 * 5  # the embeddings' and two per block: 5 of MiniLM's 6 blocks for layer -2
    names = {tensor.name for tensor in model.graph.initializer}
    assert len(names) == len(model.graph.initializer)


def test_meta_records_the_identity_and_the_tokenizer_truncates(
    real_encoder: BertEncoder, default_files: dict[str, bytes]
) -> None:
    identity, settings = read_meta(default_files[META_FILE])
    assert identity == real_encoder.identity
    assert settings == real_encoder.settings
    import tokenizers

    tokenizer = tokenizers.Tokenizer.from_str(default_files[TOKENIZER_FILE].decode())
    assert len(tokenizer.encode(TEXTS[-1]).ids) == real_encoder.settings.max_seq_len


def test_windows_split_as_the_torch_encoder_does(real_encoder: BertEncoder, default_files: dict[str, bytes]) -> None:
    onnx = OnnxEncoder(default_files)
    assert onnx.split(TEXTS, 32) == real_encoder.split(TEXTS, 32)


def test_broken_or_missing_files_are_one_line_errors(default_files: dict[str, bytes]) -> None:
    with pytest.raises(ModelError, match="faq-search onnx"):
        OnnxEncoder({})
    with pytest.raises(ModelError, match="export it again"):
        OnnxEncoder({**default_files, GRAPH_FILE: b"not a graph"})
    with pytest.raises(ModelError, match="not understood"):
        OnnxEncoder({**default_files, META_FILE: b'{"format": 99}'})
