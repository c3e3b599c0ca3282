"""The query encoder as an ONNX graph: the same weights, blocks, pooling and normalisation, for onnxruntime.

:func:`onnx_files` turns a loaded :class:`~faq_search.encoding.encoder.BertEncoder`
into the files a bundle carries under ``onnx/`` (see :mod:`faq_search.bundle.layout`):

- ``onnx/query.onnx``: embeddings, the transformer blocks up to the deepest
  pooled layer (no block above it is in the graph), the pooling of the
  settings and the L2 normalisation. Inputs ``input_ids``, ``attention_mask``
  (real tokens) and ``pool_mask`` (the tokens that count in pooling: the
  attention mask, less [CLS]/[SEP] when special tokens are excluded), all int64
  ``[batch, tokens]``; output ``vectors`` float32 ``[batch, dimension]``.
- ``onnx/tokenizer.json``: the ``tokenizers`` file that gives the same word
  pieces as the encoder, truncation at ``max_seq_len`` included.
- ``onnx/encoder.json``: the identity and settings of the encoder exported, so
  a bundle can check the graph is its own before it answers with it.

How: the graph is written node by node with ``onnx.helper`` from the weights
the encoder runs (``LeanBert``'s parameters, BertModel's names), not traced
through torch, so export takes about a second and needs no ``torch.onnx``.
The node patterns are the ones onnxruntime's optimiser fuses (LayerNorm,
erf GELU, attention with an additive mask). Weights stay float32: the runtime's
vectors must agree with torch's fp32 ones to cosine 0.9999.

What it is not: an exporter for any transformer. Only plain BERTs (what
``LeanBert`` runs) are supported; other models raise :class:`ModelError`. Nothing
here is pickled; the ONNX file holds the graph and its weights as protobuf.
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

import numpy as np

from faq_search.bundle.layout import ONNX_DIR
from faq_search.encoding.settings import EncoderIdentity, EncoderSettings, LayerSpec, Pooling
from faq_search.errors import ModelError

if TYPE_CHECKING:
    import onnx

    from faq_search.encoding.checkpoint import BertShape
    from faq_search.encoding.encoder import BertEncoder

GRAPH_FILE = f"{ONNX_DIR}/query.onnx"
TOKENIZER_FILE = f"{ONNX_DIR}/tokenizer.json"
META_FILE = f"{ONNX_DIR}/encoder.json"
ONNX_FILES = (GRAPH_FILE, TOKENIZER_FILE, META_FILE)
OPSET = 17  # LayerNormalization; onnxruntime 1.16+ runs it
META_FORMAT = 1
INPUTS = ("input_ids", "attention_mask", "pool_mask")
OUTPUT = "vectors"
_MASKED = -1.0e9  # additive attention bias of a padding key: exp() of it is exactly 0 in float32


def onnx_files(encoder: BertEncoder) -> dict[str, bytes]:
    """The bundle files (``onnx/...`` name -> bytes) that let onnxruntime answer as ``encoder`` does.

    The hook the bundle writers call: the caller adds them to the index's extra files.
    """
    try:
        import onnx  # noqa: F401 - needed by query_graph; checked here to name the fix
    except ImportError:
        raise ModelError("exporting the query encoder needs the onnx package; pip install 'faq-search[onnx]'") from None
    if encoder.lean is None:
        raise ModelError(
            f"ONNX export supports plain BERT models (config.json + safetensors); {encoder.model_name!r} is "
            "another architecture; answer with --runtime torch"
        )
    state = {name: tensor.detach().float().numpy() for name, tensor in encoder.lean.state_dict().items()}
    model = query_graph(encoder.lean.shape, state, encoder.settings, encoder.blocks_run)
    meta = {
        "format": META_FORMAT,
        "opset": OPSET,
        "inputs": list(INPUTS),
        "output": OUTPUT,
        "identity": encoder.identity.to_dict(),
        "settings": encoder.settings.to_dict(),
        "exported_blocks": encoder.blocks_run,
    }
    return {
        GRAPH_FILE: model.SerializeToString(),
        TOKENIZER_FILE: encoder.tokenizer_json().encode("utf-8"),
        META_FILE: json.dumps(meta, indent=2).encode("utf-8"),
    }


def read_meta(data: bytes) -> tuple[EncoderIdentity, EncoderSettings]:
    """The identity and settings recorded beside an exported graph."""
    try:
        meta = json.loads(data.decode("utf-8"))
        if meta.get("format") != META_FORMAT:
            raise ValueError(f"format {meta.get('format')!r}")
        return EncoderIdentity.from_dict(meta["identity"]), EncoderSettings.from_dict(meta["settings"])
    except (ValueError, KeyError, TypeError, AttributeError) as exc:
        raise ModelError(
            f"{META_FILE} is not understood ({exc}); export the query encoder again with faq-search onnx"
        ) from None


class _Graph:
    """A small builder: nodes get generated names, constants become initializers."""

    def __init__(self) -> None:
        import onnx

        self.onnx = onnx
        self.nodes: list[Any] = []
        self.initializers: list[Any] = []
        self._count = 0

    def _name(self, hint: str) -> str:
        self._count += 1
        return f"{hint}_{self._count}"

    def const(self, value: Any, hint: str = "const", dtype: Any = np.float32) -> str:
        from onnx import numpy_helper

        name = self._name(hint)
        self.initializers.append(numpy_helper.from_array(np.array(value, dtype=dtype, order="C"), name))
        return name

    def op(self, op_type: str, *inputs: str, **attributes: Any) -> str:
        output = self._name(op_type.lower())
        self.nodes.append(self.onnx.helper.make_node(op_type, list(inputs), [output], **attributes))
        return output

    def ints(self, values: list[int]) -> str:
        return self.const(values, "shape", np.int64)


def query_graph(
    shape: BertShape, state: Mapping[str, np.ndarray], settings: EncoderSettings, blocks: int
) -> onnx.ModelProto:
    """The ONNX model: BERT embeddings, ``blocks`` blocks, the settings' pooling, L2 normalisation.

    ``state`` holds BertModel's float32 tensors by name (at least the first ``blocks`` blocks).
    """
    import onnx
    from onnx import TensorProto, helper

    spec = LayerSpec.parse(settings.layer)
    layers = spec.absolute(shape.num_layers)
    if max(layers) > blocks:
        raise ModelError(f"the encoder ran {blocks} blocks but layer {settings.layer} needs {max(layers)}")
    g = _Graph()
    ids, attention, pool_mask = INPUTS
    hidden = _embeddings(g, shape, state, ids)
    states = {0: hidden}
    bias = g.op("Unsqueeze", g.op("Mul", g.op("Sub", g.const(1.0), g.op("Cast", attention, to=TensorProto.FLOAT)),
                                  g.const(_MASKED)), g.ints([1, 2]))  # fmt: skip
    for number in range(1, max(layers) + 1):
        hidden = _block(g, shape, state, f"encoder.layer.{number - 1}.", hidden, bias)
        states[number] = hidden
    mask = g.op("Unsqueeze", g.op("Cast", pool_mask, to=TensorProto.FLOAT), g.ints([2]))  # [batch, tokens, 1]
    if spec.combine == "sum" and len(layers) > 1:
        summed = states[layers[0]]
        for layer in layers[1:]:
            summed = g.op("Add", summed, states[layer])
        pooled = _pool(g, summed, mask, settings.pooling)
    else:
        parts = [_pool(g, states[layer], mask, settings.pooling) for layer in layers]
        pooled = parts[0] if len(parts) == 1 else g.op("Concat", *parts, axis=-1)
    norm = g.op("Max", g.op("ReduceL2", pooled, axes=[-1], keepdims=1), g.const(1e-12))
    g.nodes.append(helper.make_node("Div", [pooled, norm], [OUTPUT]))
    graph = helper.make_graph(
        g.nodes,
        "faq_search_query_encoder",
        [helper.make_tensor_value_info(name, TensorProto.INT64, ["batch", "tokens"]) for name in INPUTS],
        [helper.make_tensor_value_info(OUTPUT, TensorProto.FLOAT, ["batch", None])],
        g.initializers,
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", OPSET)], producer_name="faq-search")
    model.ir_version = 8  # readable by onnxruntime releases from 1.14 on
    onnx.checker.check_model(model, full_check=False)
    return model


def _embeddings(g: _Graph, shape: BertShape, state: Mapping[str, np.ndarray], ids: str) -> str:
    """Word + position (+ token type 0, folded into the positions) embeddings, then LayerNorm."""
    from onnx import TensorProto

    words = g.op("Gather", g.const(state["embeddings.word_embeddings.weight"], "word_embeddings"), ids, axis=0)
    positions_table = (
        state["embeddings.position_embeddings.weight"] + state["embeddings.token_type_embeddings.weight"][0]
    )
    width = g.op("Squeeze", g.op("Shape", ids, start=1, end=2), g.ints([0]))
    zero, one = g.const(0, "zero", np.int64), g.const(1, "one", np.int64)
    positions = g.op("Range", zero, g.op("Cast", width, to=TensorProto.INT64), one)
    summed = g.op("Add", words, g.op("Gather", g.const(positions_table, "position_embeddings"), positions, axis=0))
    return _layer_norm(g, state, "embeddings.LayerNorm.", summed, shape.layer_norm_eps)


def _layer_norm(g: _Graph, state: Mapping[str, np.ndarray], prefix: str, value: str, eps: float) -> str:
    return g.op(
        "LayerNormalization", value, g.const(state[prefix + "weight"]), g.const(state[prefix + "bias"]),
        axis=-1, epsilon=eps,
    )  # fmt: skip


def _linear(g: _Graph, value: str, weight: np.ndarray, bias: np.ndarray) -> str:
    return g.op("Add", g.op("MatMul", value, g.const(weight.T, "weight")), g.const(bias, "bias"))


def _block(g: _Graph, shape: BertShape, state: Mapping[str, np.ndarray], prefix: str, hidden: str, bias: str) -> str:
    """One post-LayerNorm BERT block (BertLayer's formulas), the attention scale folded into the query."""
    heads, width = shape.num_heads, shape.hidden_size
    scale = (width // heads) ** -0.5

    def weight(name: str) -> np.ndarray:
        return state[prefix + name]

    names = ("attention.self.query.", "attention.self.key.", "attention.self.value.")
    scales = (scale, 1.0, 1.0)
    qkv_weight = np.concatenate([weight(name + "weight") * factor for name, factor in zip(names, scales, strict=True)])
    qkv_bias = np.concatenate([weight(name + "bias") * factor for name, factor in zip(names, scales, strict=True)])
    qkv = g.op("Reshape", _linear(g, hidden, qkv_weight, qkv_bias), g.ints([0, 0, 3, heads, width // heads]))
    qkv = g.op("Transpose", qkv, perm=[2, 0, 3, 1, 4])  # [3, batch, heads, tokens, channels]
    query, key, value = (g.op("Gather", qkv, g.const(i, "index", np.int64), axis=0) for i in range(3))
    scores = g.op("Add", g.op("MatMul", query, g.op("Transpose", key, perm=[0, 1, 3, 2])), bias)
    context = g.op("MatMul", g.op("Softmax", scores, axis=-1), value)
    context = g.op("Reshape", g.op("Transpose", context, perm=[0, 2, 1, 3]), g.ints([0, 0, width]))
    projected = _linear(g, context, weight("attention.output.dense.weight"), weight("attention.output.dense.bias"))
    hidden = _layer_norm(g, state, prefix + "attention.output.LayerNorm.", g.op("Add", projected, hidden),
                         shape.layer_norm_eps)  # fmt: skip
    up = _activation(g, _linear(g, hidden, weight("intermediate.dense.weight"), weight("intermediate.dense.bias")),
                     shape.activation)  # fmt: skip
    down = _linear(g, up, weight("output.dense.weight"), weight("output.dense.bias"))
    return _layer_norm(g, state, prefix + "output.LayerNorm.", g.op("Add", down, hidden), shape.layer_norm_eps)


def _activation(g: _Graph, value: str, name: str) -> str:
    """GELU (erf or tanh form, as the config says) or ReLU, in the node patterns onnxruntime fuses."""
    if name == "relu":
        return g.op("Relu", value)
    if name == "gelu":
        inner = g.op("Add", g.op("Erf", g.op("Div", value, g.const(math.sqrt(2.0)))), g.const(1.0))
        return g.op("Mul", g.op("Mul", value, inner), g.const(0.5))
    cube = g.op("Mul", g.op("Mul", value, value), value)
    inner = g.op("Mul", g.op("Add", value, g.op("Mul", cube, g.const(0.044715))), g.const(math.sqrt(2.0 / math.pi)))
    return g.op("Mul", g.op("Mul", value, g.op("Add", g.op("Tanh", inner), g.const(1.0))), g.const(0.5))


def _pool(g: _Graph, hidden: str, mask: str, pooling: Pooling) -> str:
    """``hidden [batch, tokens, dim]`` -> ``[batch, dim]`` as :mod:`faq_search.encoding.pooling` does it."""
    from onnx import TensorProto

    if pooling is Pooling.MEAN_MAX:
        return g.op("Concat", _pool(g, hidden, mask, Pooling.MEAN), _pool(g, hidden, mask, Pooling.MAX), axis=-1)
    if pooling is Pooling.CLS:
        return g.op("Gather", hidden, g.const(0, "first", np.int64), axis=1)
    if pooling is Pooling.MEAN:
        axis = g.ints([1])
        total = g.op("ReduceSum", g.op("Mul", hidden, mask), axis, keepdims=0)
        return g.op("Div", total, g.op("Max", g.op("ReduceSum", mask, axis, keepdims=0), g.const(1.0)))
    if pooling is Pooling.MAX:
        keep = g.op("Cast", mask, to=TensorProto.BOOL)
        lowest = g.const(np.finfo(np.float32).min)
        pooled = g.op("ReduceMax", g.op("Where", keep, hidden, lowest), axes=[1], keepdims=0)
        any_token = g.op("Cast", g.op("ReduceMax", mask, axes=[1], keepdims=0), to=TensorProto.BOOL)
        return g.op("Where", any_token, pooled, g.const(0.0))
    # LAST: the last counted position (position 0 when none counts), picked with a one-hot weight
    counted = g.op("Squeeze", mask, g.ints([2]))  # [batch, tokens]
    width = g.op("Squeeze", g.op("Shape", counted, start=1, end=2), g.ints([0]))
    positions = g.op("Cast", g.op("Range", g.const(0, "zero", np.int64), width, g.const(1, "one", np.int64)),
                     to=TensorProto.FLOAT)  # fmt: skip
    last = g.op("ReduceMax", g.op("Mul", counted, positions), axes=[1], keepdims=1)
    pick = g.op("Unsqueeze", g.op("Cast", g.op("Equal", positions, last), to=TensorProto.FLOAT), g.ints([2]))
    return g.op("ReduceSum", g.op("Mul", hidden, pick), g.ints([1]), keepdims=0)
