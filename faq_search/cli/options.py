"""Options shared by several commands, declared once as ``Annotated`` types.

Only light modules are imported here (the enums of the choices), so building
the help text never loads torch, transformers or FAISS.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Annotated

import typer

from faq_search.encoding.settings import Pooling, Precision

DEFAULT_INDEX = Path(os.environ.get("FAQ_SEARCH_INDEX", "indexes/default"))
LAYER_HELP = "Hidden layer to pool: -2 (default), -1, 3, a list like -1,-2 (concat), or sum-last-4."

IndexDir = Annotated[
    Path,
    typer.Option("--index", "-i", help="Index bundle directory (default: $FAQ_SEARCH_INDEX or indexes/default)."),
]
JsonFlag = Annotated[bool, typer.Option("--json", help="Print machine-readable JSON instead of a table.")]
QuietFlag = Annotated[bool, typer.Option("--quiet", "-q", help="No progress bar.")]
MovedModel = Annotated[
    str | None,
    typer.Option(help="Where the index's model now lives, if it moved (its weights must be identical)."),
]
Threads = Annotated[int | None, typer.Option(min=1, help="CPU threads for the encoder.")]
Layer = Annotated[str, typer.Option(help=LAYER_HELP)]
PrecisionChoice = Annotated[Precision, typer.Option(help="auto = bf16 where the CPU has native bf16, else fp32.")]
PoolingChoice = Annotated[Pooling, typer.Option(help="How token vectors become one vector.")]
HybridWeight = Annotated[
    float,
    typer.Option(
        min=0.0, max=10.0, help="BM25 evidence in the ranking and the confidence: > 0 on, 0 = dense only (cosine)."
    ),
]
EncoderModel = Annotated[
    str, typer.Option(help="Encoder: 'default' (bundled all-MiniLM-L6-v2), a model directory, or a cached hub id.")
]

AnswerColumn = Annotated[str, typer.Option(help="Column holding the answers.")]
IdColumn = Annotated[
    str | None,
    typer.Option(help="Column holding entry ids. Default: 'id' if present, else ids derived from the text."),
]
QuestionColumns = Annotated[
    list[str] | None,
    typer.Option(help="Question column; repeat for paraphrase columns. Default: 'question' if present."),
]

QueriesFile = Annotated[Path, typer.Argument(help="Labelled queries (as for eval).")]
QueryColumn = Annotated[str, typer.Option(help="Column of the labelled query file holding the question.")]
RelevantColumn = Annotated[
    str, typer.Option(help="Column holding the ids of the entries that answer it, separated by '|'.")
]
NegativesFile = Annotated[
    Path | None,
    typer.Option(help="File of questions this FAQ cannot answer (the --query-column column, or its only column)."),
]

RuntimeChoice = Annotated[
    str | None,
    typer.Option(
        "--runtime",
        help="Where questions are encoded: onnx (the index's ONNX graph on onnxruntime; add it with faq-search onnx), "
        "torch, or auto: onnx when the index has it and onnxruntime is installed, else torch; for batched work "
        "(serve, eval) torch wherever it is installed. Default: $FAQ_SEARCH_RUNTIME, else auto.",
        show_default=False,
    ),
]
