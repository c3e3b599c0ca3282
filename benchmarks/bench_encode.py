"""Indexing throughput: faq-search's encoder against sentence-transformers' own encode.

The same texts (the answers of ../shared/data/stackfaq), the same model (the
bundled all-MiniLM-L6-v2), one process: each round times sentence-transformers'
default ``encode`` (batch 32) and faq-search's ``BertEncoder.encode`` back to
back, alternating which goes first. Prints the median tokens/s of each, the
median of the per-round ratios (robust when the machine's load drifts), and
the minimum cosine of our vectors to our own fp32 reference.

Tokens are word pieces after truncation to 256 (both sides truncate at 256),
counted once; both timings include tokenization and pooling.

ONNX Runtime is the other peer (fastembed's engine, and faq-search's own
torch-free query path): the encoder's ONNX graph for the same layer
(:mod:`faq_search.encoding.onnx_export`) run by ``OnnxEncoder`` in fp32, and the
same graph after onnxruntime's dynamic int8 quantization (``quantize_dynamic``,
int8 weights, activations quantized per call). They take part in the same
rounds, batched as our encoder batches; each gets its tokens/s, how many times
faster our encoder is, and its least cosine to our fp32 vectors.

    python benchmarks/bench_encode.py                 # layers -2 (default) and -1, 5 rounds each
    python benchmarks/bench_encode.py --layers -1 --rounds 9 --threads 2
    python benchmarks/bench_encode.py --column question --layers -2   # short texts
    python benchmarks/bench_encode.py --data DIR     # the shared sets elsewhere than ../shared/data
"""

from __future__ import annotations

import argparse
import os
import platform
import statistics
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
from shared_data import add_data_option, require_sets


def machine() -> str:
    """One line naming the CPU, cores, bf16 support and library versions."""
    import torch

    from faq_search.encoding.encoder import native_bf16

    model = "unknown CPU"
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    return (
        f"{model}, {os.cpu_count()} logical CPUs, native bf16: {native_bf16()}, torch {torch.__version__} "
        f"({torch.get_num_threads()} threads), python {platform.python_version()}"
    )


def matmul_ceiling(dtype_name: str, seconds: float = 1.0) -> float:
    """GFLOP/s of this CPU on the model's largest matmul shape ([2048, 384] x [384, 1536]), best of several runs."""
    import torch

    dtype = getattr(torch, dtype_name)
    values, weight = torch.randn(2048, 384).to(dtype), torch.randn(1536, 384).to(dtype)
    flops = 2 * 2048 * 384 * 1536
    best = float("inf")
    with torch.inference_mode():
        torch.nn.functional.linear(values, weight)
        deadline = time.perf_counter() + seconds
        while time.perf_counter() < deadline:
            started = time.perf_counter()
            for _ in range(10):
                torch.nn.functional.linear(values, weight)
            best = min(best, (time.perf_counter() - started) / 10)
    return flops / best / 1e9


def linear_flops_per_token(hidden: int, intermediate: int) -> int:
    """Multiply-add FLOPs of one block's linear layers per token (attention's share, a few %, left out)."""
    return 2 * (hidden * 3 * hidden + hidden * hidden + 2 * hidden * intermediate)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--set", default="stackfaq", help="folder under --data")
    add_data_option(parser)
    parser.add_argument(
        "--column", default="answer", help="faq.csv column to encode (question: short texts, distinct ones)"
    )
    parser.add_argument("--layers", nargs="+", default=["-2", "-1"], help="our encoder's layer settings to compare")
    parser.add_argument("--rounds", type=int, default=5, help="timed rounds per layer (after one warm-up)")
    parser.add_argument("--threads", type=int, default=None, help="torch threads (default: torch's choice)")
    parser.add_argument("--limit", type=int, default=None, help="use only the first N texts (quick checks)")
    args = parser.parse_args()
    require_sets(args.data, [args.set])

    import pandas as pd
    import torch

    if args.threads:
        torch.set_num_threads(args.threads)
    from sentence_transformers import SentenceTransformer

    from faq_search.encoding.encoder import BertEncoder, resolve_model
    from faq_search.encoding.settings import EncoderSettings

    column = pd.read_csv(args.data / args.set / "faq.csv")[args.column].dropna().astype(str)
    texts = list(dict.fromkeys(column))[: args.limit]
    path, name = resolve_model("default")
    st = SentenceTransformer(path, device="cpu")
    print(f"machine: {machine()}")
    print(
        f"texts: {len(texts)} distinct {args.column}s of {args.set}; model {name}; "
        "sentence-transformers encode(batch_size=32)"
    )
    ceilings = {dtype: matmul_ceiling(dtype) for dtype in ("bfloat16", "float32")}
    print(
        f"matmul ceiling here: bf16 {ceilings['bfloat16']:.0f} GFLOP/s, fp32 {ceilings['float32']:.0f} GFLOP/s "
        f"({ceilings['bfloat16'] / ceilings['float32']:.2f}x)"
    )

    for layer in args.layers:
        ours = BertEncoder(EncoderSettings(layer=layer))
        reference = BertEncoder(EncoderSettings(layer=layer, precision="fp32"))
        ids, _ = ours.tokenize(texts)
        tokens = sum(len(row) for row in ids)
        encoders = {"st": lambda: st.encode(texts, convert_to_numpy=True), "ours": lambda e=ours: e.encode(texts)}
        encoders.update(onnx_peers(reference, texts))
        # warm-up, and the quality checks
        fp32_vectors = reference.encode(texts)
        vectors = {name: np.asarray(run()) for name, run in encoders.items()}
        min_cos = {name: float(np.min(np.sum(v * fp32_vectors, axis=1))) for name, v in vectors.items()}
        del reference

        times: dict[str, list[float]] = {name: [] for name in encoders}
        for round_ in range(args.rounds):
            order = list(encoders) if round_ % 2 == 0 else list(reversed(encoders))
            for who in order:
                started = time.perf_counter()
                encoders[who]()
                times[who].append(time.perf_counter() - started)
        ratios = [s / o for s, o in zip(times["st"], times["ours"], strict=True)]
        st_rate = tokens / statistics.median(times["st"])
        our_rate = tokens / statistics.median(times["ours"])
        print(
            f"\nlayer {layer} ({ours.blocks_run} of {ours.num_layers} blocks run), precision {ours.precision.value}, "
            f"{tokens} tokens, {args.rounds} rounds"
        )
        print(f"  sentence-transformers encode : {st_rate:8.0f} tokens/s (median)")
        print(f"  faq-search BertEncoder.encode: {our_rate:8.0f} tokens/s (median)")
        print(
            f"  ratio ours/st: {statistics.median(ratios):.2f}x median of rounds "
            f"(min {min(ratios):.2f}x, max {max(ratios):.2f}x)"
        )
        print(f"  min cosine, ours vs our fp32 reference: {min_cos['ours']:.6f}")
        for name in (n for n in encoders if n.startswith("onnxruntime")):
            peer = [p / o for p, o in zip(times[name], times["ours"], strict=True)]
            print(
                f"  {name + ':':<29} {tokens / statistics.median(times[name]):8.0f} tokens/s (median); ours is "
                f"{statistics.median(peer):.2f}x as fast (min {min(peer):.2f}x, max {max(peer):.2f}x); "
                f"min cosine to our fp32 {min_cos[name]:.6f}"
            )
        intermediate = ours.lean.shape.intermediate_size if ours.lean is not None else 4 * ours.hidden_size
        per_block = linear_flops_per_token(ours.hidden_size, intermediate)
        ceiling = (
            ceilings["bfloat16" if ours.precision.value == "bf16" else "float32"] * 1e9 / (per_block * ours.blocks_run)
        )
        st_ceiling = ceilings["float32"] * 1e9 / (per_block * ours.num_layers)
        print(
            f"  at the matmul ceiling the linear layers alone would allow {ceiling:.0f} tokens/s here: ours runs at "
            f"{our_rate / ceiling:.0%} of it; sentence-transformers at {st_rate / st_ceiling:.0%} of its fp32 one "
            f"({st_ceiling:.0f} tokens/s)"
        )
        if ours.layer_indices == (ours.num_layers,):
            same_model = float(np.min(np.sum(fp32_vectors * vectors["st"], axis=1)))
            print(f"  min cosine, our fp32 vs sentence-transformers (same layer and pooling): {same_model:.6f}")


def onnx_peers(reference: Any, texts: list[str]) -> dict[str, Callable[[], object]]:
    """ONNX Runtime fp32 and dynamic int8 on the encoder's exported graph, as encode calls over ``texts``."""
    import tempfile

    from onnxruntime.quantization import QuantType, quantize_dynamic

    from faq_search.encoding.onnx_export import GRAPH_FILE, onnx_files
    from faq_search.encoding.onnx_runtime import OnnxEncoder

    files = onnx_files(reference)
    with tempfile.TemporaryDirectory() as scratch:
        source, quantized = Path(scratch) / "fp32.onnx", Path(scratch) / "int8.onnx"
        source.write_bytes(files[GRAPH_FILE])
        quantize_dynamic(source, quantized, weight_type=QuantType.QInt8)
        int8 = {**files, GRAPH_FILE: quantized.read_bytes()}
    fp32_runtime, int8_runtime = OnnxEncoder(files), OnnxEncoder(int8)
    return {
        "onnxruntime fp32": lambda: fp32_runtime.encode(texts),
        "onnxruntime int8 (dynamic)": lambda: int8_runtime.encode(texts),
    }


if __name__ == "__main__":
    main()
