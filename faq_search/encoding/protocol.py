"""What the rest of faq-search may ask of an encoder: two small protocols.

:class:`Encoder` is all an index needs to embed texts and record how; a test
fake implements it without inheritance. :class:`TextWindows` is the optional
second capability, for encoders that see a bounded number of word pieces: it
measures texts and splits long ones into windows. An encoder declares it
through :attr:`Encoder.windows` (None: texts are embedded whole, unmeasured),
so the index takes one documented path instead of probing attributes.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Protocol

if TYPE_CHECKING:
    import numpy as np

    from faq_search.encoding.settings import EncoderIdentity, EncoderSettings, Precision


class TextWindows(Protocol):
    """Long-text handling of an encoder with a bounded input window. Safe to call from several threads."""

    def token_lengths(self, texts: Sequence[str]) -> list[int]:
        """How many tokens the encoder runs for each text (special tokens included, after truncation).

        Texts of equal length can share a forward pass without padding, which
        keeps a text's vector independent of the batch it ran in.
        """
        ...

    def split(self, texts: Sequence[str], window: int) -> list[list[str]]:
        """Each text as itself when it fits ``window`` tokens, else as overlapping windows that cover it."""
        ...


class Encoder(Protocol):
    """What the index reads from an encoder: a width, an identity, its settings, and a batch method."""

    @property
    def dimension(self) -> int: ...

    @property
    def identity(self) -> EncoderIdentity:
        """What the vectors depend on (model, weights, layer, pooling, ...): recorded in the bundle."""
        ...

    @property
    def settings(self) -> EncoderSettings: ...

    @property
    def precision(self) -> Precision:
        """The precision the vectors are computed in (``auto`` resolved)."""
        ...

    @property
    def windows(self) -> TextWindows | None:
        """Long-text splitting and token lengths, or None when the encoder takes texts whole."""
        ...

    def encode(self, texts: Sequence[str]) -> np.ndarray:
        """Vectors for ``texts`` in input order: float32 ``[len(texts), dimension]``, unit length."""
        ...
