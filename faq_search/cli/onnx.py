"""``faq-search onnx``: give a bundle its query encoder as an ONNX graph, so it answers without torch."""

from __future__ import annotations

import json
from typing import Annotated

import typer

from faq_search.cli.options import DEFAULT_INDEX, IndexDir, JsonFlag, MovedModel, Threads


def onnx(
    index_dir: IndexDir = DEFAULT_INDEX,
    remove: Annotated[bool, typer.Option("--remove", help="Take the graph out of the bundle instead.")] = False,
    model: MovedModel = None,
    threads: Threads = None,
    as_json: JsonFlag = False,
) -> None:
    """Add the query encoder to an index as ONNX (about 80 MB for the default model), checked against torch.

    Then ask, serve and eval can answer with onnxruntime (--runtime onnx, or auto), also where torch is not
    installed. Exporting needs torch. Re-indexing with the same encoder keeps the graph; a new encoder drops it.
    """
    from faq_search.index.onnx_files import add_onnx

    report = add_onnx(index_dir, remove=remove, model_path=model, threads=threads)
    if as_json:
        typer.echo(json.dumps(report.to_dict(), indent=2))
    elif report.added:
        typer.echo(
            f"Added the ONNX query encoder ({report.graph_bytes / 2**20:.0f} MiB) to {report.index}: least cosine "
            f"to torch fp32 {report.min_cosine:.6f} over {report.checked_texts} texts, in {report.seconds:.1f} s"
        )
    else:
        typer.echo(f"Removed the ONNX query encoder from {report.index}")
