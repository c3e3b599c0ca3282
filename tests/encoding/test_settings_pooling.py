"""LayerSpec / EncoderSettings / EncoderIdentity, and the pooling functions against a numpy reference."""

from __future__ import annotations

import json
from dataclasses import replace

import numpy as np
import pytest
import torch

from faq_search.encoding.pooling import (
    POOLERS,
    cls_pool,
    last_pool,
    max_pool,
    mean_max_pool,
    mean_pool,
    pool_layers,
    pooled_width,
)
from faq_search.encoding.settings import (
    DEFAULT_MODEL,
    EncoderIdentity,
    EncoderSettings,
    Fields,
    LayerSpec,
    Pooling,
    Precision,
    choice,
)
from faq_search.errors import InputError

# -- LayerSpec -----------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "layers", "combine", "shown"),
    [
        ("-2", (-2,), "concat", "-2"),
        (-2, (-2,), "concat", "-2"),
        ("3", (3,), "concat", "3"),
        ("0", (0,), "concat", "0"),
        ("-1,-2", (-1, -2), "concat", "-1,-2"),
        (" -1 , -2 ", (-1, -2), "concat", "-1,-2"),
        ("sum-last-4", (-4, -3, -2, -1), "sum", "sum:-4,-3,-2,-1"),
        ("SUM-LAST-2", (-2, -1), "sum", "sum:-2,-1"),
        ("concat-last-4", (-4, -3, -2, -1), "concat", "-4,-3,-2,-1"),
        ("concat-last-1", (-1,), "concat", "-1"),
        ("sum:-1,-2", (-1, -2), "sum", "sum:-1,-2"),
        ("concat:-1,-2", (-1, -2), "concat", "-1,-2"),
        ("sum:-2", (-2,), "sum", "-2"),  # summing one layer is that layer
    ],
)
def test_layer_spec_parse(text: str | int, layers: tuple[int, ...], combine: str, shown: str) -> None:
    spec = LayerSpec.parse(text)
    assert spec.layers == layers
    assert spec.combine == combine
    assert str(spec) == shown
    again = LayerSpec.parse(str(spec))  # the string form parses back to an equivalent spec
    assert again.layers == layers
    assert str(again) == shown


def test_layer_spec_default_is_second_to_last() -> None:
    assert LayerSpec() == LayerSpec.parse("-2")


@pytest.mark.parametrize(
    ("text", "words"),
    [
        ("", "names no layer"),
        (",", "names no layer"),
        ("sum:", "names no layer"),
        ("abc", "not understood"),
        ("-2.5", "not understood"),
        ("last", "not understood"),
        ("avg:-1,-2", "not understood"),
        ("-1;-2", "not understood"),
        ("sum-last-x", "not understood"),
        ("sum-last-0", "at least 1"),
        ("concat-last--2", "at least 1"),
        ("-1,-1", "repeats a layer"),
        ("sum:-2,-1,-2", "repeats a layer"),
    ],
)
def test_layer_spec_parse_errors(text: str, words: str) -> None:
    with pytest.raises(InputError) as info:
        LayerSpec.parse(text)
    assert words in str(info.value)
    assert repr(text) in str(info.value)


@pytest.mark.parametrize(
    ("spec", "num_layers", "expected"),
    [
        ("-1", 6, (6,)),
        ("-2", 6, (5,)),
        ("-7", 6, (0,)),
        ("0", 6, (0,)),
        ("6", 6, (6,)),
        ("sum-last-4", 6, (3, 4, 5, 6)),
        ("concat-last-7", 6, (0, 1, 2, 3, 4, 5, 6)),
        ("-1,0,2", 12, (12, 0, 2)),
    ],
)
def test_layer_spec_absolute(spec: str, num_layers: int, expected: tuple[int, ...]) -> None:
    assert LayerSpec.parse(spec).absolute(num_layers) == expected


@pytest.mark.parametrize(("spec", "bad"), [("-8", "-8"), ("7", "7"), ("-1,7", "7"), ("concat-last-8", "-8")])
def test_layer_spec_absolute_out_of_range(spec: str, bad: str) -> None:
    with pytest.raises(InputError) as info:
        LayerSpec.parse(spec).absolute(6)
    message = str(info.value)
    assert f"layer {bad} is out of range for a model with 6 layers" in message
    assert "-7..6" in message


@pytest.mark.parametrize(("spec", "num_layers"), [("-1,6", 6), ("0,-7", 6), ("sum:-2,11", 12)])
def test_layer_spec_absolute_rejects_the_same_layer_named_twice(spec: str, num_layers: int) -> None:
    # parse() sees different numbers; only absolute() knows they are one layer of this model
    parsed = LayerSpec.parse(spec)
    with pytest.raises(InputError) as info:
        parsed.absolute(num_layers)
    assert "same layer twice" in str(info.value)
    assert str(parsed) in str(info.value)


# -- EncoderSettings -----------------------------------------------------------


def test_encoder_settings_defaults() -> None:
    settings = EncoderSettings()
    assert settings.model == DEFAULT_MODEL
    assert settings.layer == "-2"
    assert settings.layer_spec == LayerSpec((-2,), "concat")
    assert settings.pooling is Pooling.MEAN
    assert settings.precision is Precision.AUTO
    assert settings.include_special is True
    assert settings.max_seq_len == 256


def test_encoder_settings_normalise_their_fields() -> None:
    settings = EncoderSettings(layer="sum-last-2", pooling="MEAN_MAX", precision="BF16")  # type: ignore[arg-type]
    assert settings.layer == "sum:-2,-1"
    assert settings.layer_spec == LayerSpec((-2, -1), "sum")
    assert settings.pooling is Pooling.MEAN_MAX
    assert settings.precision is Precision.BF16
    assert EncoderSettings(pooling=Pooling.CLS).pooling is Pooling.CLS


@pytest.mark.parametrize(
    ("kwargs", "words"),
    [
        ({"pooling": "avg"}, ["unknown pooling 'avg'", "mean, max, mean_max, cls, last"]),
        ({"pooling": ""}, ["unknown pooling ''"]),
        ({"precision": "fp16"}, ["unknown precision 'fp16'", "auto, fp32, bf16"]),
        ({"precision": "int8"}, ["unknown precision 'int8'"]),
        ({"max_seq_len": 7}, ["max_seq_len 7 is out of range", "8..8192"]),
        ({"max_seq_len": 8193}, ["max_seq_len 8193 is out of range"]),
        ({"max_seq_len": 0}, ["max_seq_len 0 is out of range"]),
        ({"max_seq_len": -256}, ["max_seq_len -256 is out of range"]),
        ({"layer": "top"}, ["layer spec 'top' is not understood"]),
        ({"layer": "-2,-2"}, ["repeats a layer"]),
    ],
)
def test_encoder_settings_validation(kwargs: dict[str, object], words: list[str]) -> None:
    with pytest.raises(InputError) as info:
        EncoderSettings(**kwargs)  # type: ignore[arg-type]
    for word in words:
        assert word in str(info.value)


@pytest.mark.parametrize("max_seq_len", [8, 128, 8192])
def test_encoder_settings_accept_the_seq_len_bounds(max_seq_len: int) -> None:
    assert EncoderSettings(max_seq_len=max_seq_len).max_seq_len == max_seq_len


@pytest.mark.parametrize(
    "settings",
    [
        EncoderSettings(),
        EncoderSettings(
            model="/models/bert",
            layer="concat-last-3",
            pooling=Pooling.MAX,
            include_special=False,
            max_seq_len=64,
            precision=Precision.FP32,
        ),
        EncoderSettings(layer="sum:-1,-4", pooling=Pooling.LAST, precision=Precision.BF16),
    ],
)
def test_encoder_settings_dict_round_trip(settings: EncoderSettings) -> None:
    data = settings.to_dict()
    assert set(data) == {"model", "layer", "pooling", "include_special", "max_seq_len", "precision"}
    assert type(data["pooling"]) is str and type(data["precision"]) is str  # plain JSON values, not enums
    assert data["pooling"] == settings.pooling.value
    assert data["precision"] == settings.precision.value
    restored = EncoderSettings.from_dict(json.loads(json.dumps(data)))
    assert restored == settings
    assert restored.pooling is settings.pooling
    assert restored.precision is settings.precision


def test_encoder_settings_from_dict_ignores_unknown_keys_and_validates() -> None:
    assert EncoderSettings.from_dict({"pooling": "max", "future_option": 1}) == EncoderSettings(pooling=Pooling.MAX)
    with pytest.raises(InputError):
        EncoderSettings.from_dict({"pooling": "median"})


def test_choice_accepts_members_and_case_insensitive_values() -> None:
    assert choice(Fields, "ANSWER", "fields") is Fields.ANSWER
    assert choice(Fields, Fields.QUESTION_ANSWER, "fields") is Fields.QUESTION_ANSWER
    with pytest.raises(InputError, match=r"unknown fields 'both'; use one of question\+answer, answer"):
        choice(Fields, "both", "fields")


# -- EncoderIdentity -------------------------------------------------------------

IDENTITY = EncoderIdentity(
    model_name="all-MiniLM-L6-v2",
    weights_sha256="ab" * 32,
    layer="-2",
    pooling="mean",
    include_special=True,
    max_seq_len=256,
    dimension=384,
)


def test_identity_without_differences() -> None:
    assert IDENTITY.differences(replace(IDENTITY)) == []
    assert EncoderIdentity.from_dict({**IDENTITY.to_dict(), "extra": 1}) == IDENTITY


def test_identity_differences_name_each_field_and_both_values() -> None:
    other = replace(IDENTITY, dimension=768, pooling="max", weights_sha256="cd" * 32)
    differences = IDENTITY.differences(other)
    name = IDENTITY.model_name
    assert differences == [
        f"model {name!r} (weights {'ab' * 6}) != {name!r} (weights {'cd' * 6})",
        "pooling 'mean' != 'max'",
        "dimension 384 != 768",
    ]
    assert other.differences(IDENTITY) == [
        f"model {name!r} (weights {'cd' * 6}) != {name!r} (weights {'ab' * 6})",
        "pooling 'max' != 'mean'",
        "dimension 768 != 384",
    ]


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("layer", "-1"),
        ("pooling", "cls"),
        ("include_special", False),
        ("max_seq_len", 128),
        ("dimension", 32),
    ],
)
def test_identity_every_field_counts(field: str, value: object) -> None:
    (difference,) = IDENTITY.differences(replace(IDENTITY, **{field: value}))
    assert difference.startswith(f"{field} ")
    assert repr(value) in difference


def test_identity_compares_the_model_by_its_weights() -> None:
    (difference,) = IDENTITY.differences(replace(IDENTITY, model_name="bert-base", weights_sha256="00" * 32))
    assert difference.startswith("model ")
    assert "'bert-base'" in difference and "000000000000" in difference
    assert IDENTITY.differences(replace(IDENTITY, model_name="same-weights-elsewhere")) == []


# -- pooling vs a numpy reference --------------------------------------------------


def reference_pool(hidden: np.ndarray, mask: np.ndarray, pooling: Pooling) -> np.ndarray:
    """The obvious per-row loops, in float64."""
    batch, _, dim = hidden.shape
    rows = []
    for b in range(batch):
        kept = np.flatnonzero(mask[b] != 0)
        tokens = hidden[b, kept].astype(np.float64)
        mean = tokens.mean(axis=0) if kept.size else np.zeros(dim)
        top = tokens.max(axis=0) if kept.size else np.zeros(dim)
        if pooling is Pooling.MEAN:
            rows.append(mean)
        elif pooling is Pooling.MAX:
            rows.append(top)
        elif pooling is Pooling.MEAN_MAX:
            rows.append(np.concatenate([mean, top]))
        elif pooling is Pooling.CLS:
            rows.append(hidden[b, 0].astype(np.float64))
        elif pooling is Pooling.LAST:
            rows.append(hidden[b, kept[-1]].astype(np.float64))
        else:  # pragma: no cover - a new member needs a reference here
            raise AssertionError(pooling)
    return np.stack(rows)


def random_case(seed: int, kind: str, batch: int = 6, tokens: int = 9, dim: int = 5) -> tuple[np.ndarray, np.ndarray]:
    """Hidden states and a mask where every row keeps at least one token.

    Masked-out positions get huge values of both signs, so a pooler that lets
    them in is caught by mean and max alike.
    """
    rng = np.random.default_rng(seed)
    hidden = rng.normal(size=(batch, tokens, dim)).astype(np.float32)
    if kind == "padding":  # what a tokenizer gives: a prefix of ones
        lengths = rng.integers(1, tokens + 1, size=batch)
        mask = (np.arange(tokens)[None, :] < lengths[:, None]).astype(np.int64)
    else:  # arbitrary holes, e.g. special tokens left out
        mask = (rng.random((batch, tokens)) < 0.5).astype(np.int64)
        mask[np.arange(batch), rng.integers(0, tokens, size=batch)] = 1
    out = mask == 0
    hidden[out] = rng.choice([-1e6, 1e6], size=(int(out.sum()), dim))
    return hidden, mask


@pytest.mark.parametrize("pooling", list(Pooling))
@pytest.mark.parametrize("kind", ["padding", "holes"])
@pytest.mark.parametrize("seed", [0, 1, 2])
@pytest.mark.parametrize("mask_dtype", [torch.int64, torch.bool, torch.float32])
def test_poolers_match_numpy(pooling: Pooling, kind: str, seed: int, mask_dtype: torch.dtype) -> None:
    hidden, mask = random_case(seed, kind)
    got = POOLERS[pooling](torch.from_numpy(hidden), torch.from_numpy(mask).to(mask_dtype))
    expected = reference_pool(hidden, mask, pooling)
    assert got.dtype == torch.float32
    assert tuple(got.shape) == expected.shape
    np.testing.assert_allclose(got.numpy(), expected, rtol=1e-5, atol=1e-5)


def test_every_pooling_member_has_a_pooler() -> None:
    assert set(POOLERS) == set(Pooling)
    assert POOLERS[Pooling.MEAN] is mean_pool
    assert POOLERS[Pooling.MAX] is max_pool
    assert POOLERS[Pooling.MEAN_MAX] is mean_max_pool
    assert POOLERS[Pooling.CLS] is cls_pool
    assert POOLERS[Pooling.LAST] is last_pool


def test_max_pool_of_all_negative_tokens_is_negative() -> None:
    hidden = -torch.rand(3, 4, 2) - 1.0  # every value in [-2, -1)
    mask = torch.tensor([[1, 1, 0, 0], [1, 0, 0, 0], [1, 1, 1, 1]])
    got = max_pool(hidden, mask)
    assert (got < -0.99).all()
    expected = reference_pool(hidden.numpy(), mask.numpy(), Pooling.MAX)
    np.testing.assert_allclose(got.numpy(), expected, rtol=1e-6)


@pytest.mark.parametrize("pooling", list(Pooling))
@pytest.mark.parametrize("mask_dtype", [torch.int64, torch.bool, torch.float32])
def test_pooling_never_modifies_its_inputs(pooling: Pooling, mask_dtype: torch.dtype) -> None:
    hidden_np, mask_np = random_case(7, "holes")
    hidden = torch.from_numpy(hidden_np)
    mask = torch.from_numpy(mask_np).to(mask_dtype)
    mask[0] = 0  # an all-zero row too
    hidden_before, mask_before = hidden.clone(), mask.clone()
    out = POOLERS[pooling](hidden, mask)
    assert torch.equal(hidden, hidden_before)
    assert torch.equal(mask, mask_before)
    out.add_(1.0)  # the result is a new tensor: writing into it leaves the input alone
    assert torch.equal(hidden, hidden_before)


def test_pool_layers_never_modifies_its_inputs() -> None:
    layers = [torch.randn(2, 4, 3) for _ in range(4)]
    mask = torch.tensor([[1, 1, 1, 0], [1, 0, 0, 0]])
    before = [t.clone() for t in layers]
    for pooling in Pooling:
        for combine in ("concat", "sum"):
            pool_layers(layers, [1, 3], mask, pooling, combine).add_(1.0)
            assert all(torch.equal(a, b) for a, b in zip(layers, before, strict=True))
    assert torch.equal(mask, torch.tensor([[1, 1, 1, 0], [1, 0, 0, 0]]))


@pytest.mark.parametrize("pooling", [Pooling.MEAN, Pooling.MAX, Pooling.MEAN_MAX])
def test_all_zero_mask_rows_pool_to_zeros(pooling: Pooling) -> None:
    hidden = torch.randn(3, 5, 4) * 100
    mask = torch.tensor([[1, 1, 0, 0, 0], [0, 0, 0, 0, 0], [0, 0, 0, 0, 0]])
    got = POOLERS[pooling](hidden, mask)
    assert torch.isfinite(got).all()
    assert torch.equal(got[1:], torch.zeros_like(got[1:]))
    expected = reference_pool(hidden.numpy(), mask.numpy(), pooling)
    np.testing.assert_allclose(got[0].numpy(), expected[0], rtol=1e-5, atol=1e-4)


def test_cls_ignores_the_mask_and_last_follows_it() -> None:
    hidden = torch.arange(2 * 4 * 1, dtype=torch.float32).reshape(2, 4, 1)
    mask = torch.tensor([[0, 1, 1, 0], [1, 1, 1, 1]])
    assert cls_pool(hidden, mask).flatten().tolist() == [0.0, 4.0]
    assert last_pool(hidden, mask).flatten().tolist() == [2.0, 7.0]


@pytest.mark.parametrize(
    ("pooling", "hidden_size", "layers", "combine", "width"),
    [
        (Pooling.MEAN, 384, 1, "concat", 384),
        (Pooling.MEAN, 384, 4, "concat", 1536),
        (Pooling.MEAN, 384, 4, "sum", 384),
        (Pooling.MEAN_MAX, 384, 1, "concat", 768),
        (Pooling.MEAN_MAX, 384, 2, "concat", 1536),
        (Pooling.MEAN_MAX, 384, 3, "sum", 768),
        (Pooling.CLS, 768, 2, "concat", 1536),
        (Pooling.LAST, 768, 2, "sum", 768),
        (Pooling.MAX, 16, 1, "sum", 16),
    ],
)
def test_pooled_width(pooling: Pooling, hidden_size: int, layers: int, combine: str, width: int) -> None:
    assert pooled_width(pooling, hidden_size, layers, combine) == width


@pytest.mark.parametrize("pooling", list(Pooling))
@pytest.mark.parametrize("combine", ["concat", "sum"])
@pytest.mark.parametrize("indices", [[2], [3, 1], [0, 4, 2]])
def test_pool_layers_matches_numpy_and_pooled_width(pooling: Pooling, combine: str, indices: list[int]) -> None:
    rng = np.random.default_rng(len(indices))
    states = [rng.normal(size=(4, 7, 3)).astype(np.float32) for _ in range(5)]
    mask = np.ones((4, 7), dtype=np.int64)
    mask[1, 3:] = 0
    mask[2, [0, 5]] = 0
    mask[3, 1:] = 0
    got = pool_layers([torch.from_numpy(s) for s in states], indices, torch.from_numpy(mask), pooling, combine)
    if combine == "sum":
        expected = reference_pool(np.sum([states[i] for i in indices], axis=0), mask, pooling)
    else:  # concatenated in the order the indices are given
        expected = np.concatenate([reference_pool(states[i], mask, pooling) for i in indices], axis=-1)
    assert got.shape[-1] == pooled_width(pooling, 3, len(indices), combine)
    np.testing.assert_allclose(got.numpy(), expected, rtol=1e-5, atol=1e-5)


def test_pool_layers_works_in_float32_for_half_precision_states() -> None:
    states = [torch.randn(2, 3, 4).to(torch.bfloat16) for _ in range(3)]
    mask = torch.tensor([[1, 1, 0], [1, 1, 1]])
    for combine in ("concat", "sum"):
        got = pool_layers(states, [1, 2], mask, Pooling.MEAN, combine)
        assert got.dtype == torch.float32
    summed = pool_layers(states, [1, 2], mask, Pooling.MEAN, "sum")
    expected = reference_pool((states[1].float() + states[2].float()).numpy(), mask.numpy(), Pooling.MEAN)
    np.testing.assert_allclose(summed.numpy(), expected, rtol=1e-5, atol=1e-5)
