"""Which encoder answers an index's questions, and the check that its vectors match the bundle's.

A bundle records the encoder its vectors were made with (:class:`EncoderIdentity`);
a query encoder is only usable when it makes the same vectors. It is loaded on
the runtime :func:`~faq_search.encoding.runtime.pick_runtime` chooses: the
bundle's ONNX graph (``faq-search onnx``) or the torch encoder, from the
recorded model, a ``model_path`` holding the same weights, or the adapted
encoder the bundle carries (``faq-search adapt``) in its ``encoder/`` folder.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from pathlib import Path

from faq_search.encoding.encoder import BertEncoder
from faq_search.encoding.protocol import Encoder
from faq_search.encoding.runtime import Runtime, pick_runtime
from faq_search.encoding.settings import ADAPTED_MODEL, ENCODER_DIR, EncoderIdentity, EncoderSettings
from faq_search.errors import BundleError, SettingsMismatchError


def has_onnx(files: Mapping[str, bytes]) -> bool:
    """Whether a bundle's files carry its query encoder as an ONNX graph."""
    from faq_search.encoding.onnx_runtime import has_onnx_files

    return has_onnx_files(files)


def encoder_files(files: Mapping[str, bytes]) -> dict[str, bytes]:
    """The files of the adapted encoder a bundle carries (``encoder/...``); empty for a stock model."""
    return {name: data for name, data in files.items() if name.startswith(f"{ENCODER_DIR}/")}


def adapted_encoder_dir(settings: EncoderSettings, path: Path | None) -> str | None:
    """For a bundle that carries its adapted encoder: where its weights are on disk; None for a stock model."""
    if settings.model != ADAPTED_MODEL:
        return None
    if path is None or not (path / ENCODER_DIR).is_dir():
        raise BundleError(
            f"this index carries its own adapted encoder, but {ENCODER_DIR}/ is not found beside it; "
            "load the index from its bundle directory"
        )
    return str(path / ENCODER_DIR)  # check_encoder proves these are the recorded weights


def load_query_encoder(
    settings: EncoderSettings,
    files: Mapping[str, bytes],
    runtime: Runtime,
    *,
    model_dir: str | None = None,
    threads: int | None = None,
) -> Encoder:
    """The query encoder on ``runtime`` (resolved): the bundle's ONNX graph, or torch with ``settings``.

    ``model_dir`` replaces the recorded model (moved weights, or the bundle's adapted encoder).
    """
    if runtime is Runtime.ONNX:
        from faq_search.encoding.onnx_runtime import OnnxEncoder

        return OnnxEncoder(files, threads=threads)
    if model_dir is not None:
        settings = dataclasses.replace(settings, model=model_dir)
    return BertEncoder(settings, threads=threads)


def resolve_runtime(wanted: Runtime | None, files: Mapping[str, bytes], model_moved: bool) -> Runtime:
    """The runtime a bundle's own query encoder loads on (``auto`` and None resolved).

    Raises ModelError naming the install or the command when the wanted runtime cannot run here.
    """
    return pick_runtime(wanted, has_graph=has_onnx(files), model_moved=model_moved)


def check_encoder(identity: EncoderIdentity, encoder: Encoder) -> None:
    """Refuse an encoder whose vectors would not be comparable with ones made as ``identity`` says."""
    differences = identity.differences(encoder.identity)
    if differences:
        raise SettingsMismatchError(
            "the query encoder differs from the one this index was built with ("
            + "; ".join(differences)
            + "); query with the index's own settings or rebuild the index"
        )
