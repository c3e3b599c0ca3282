"""The entry lists that ``FaqIndex.upsert`` and ``delete`` rebuild from, with their input checks.

Pure functions over entry lists: they decide *which* entries the index holds
next and refuse unusable input before any encoding; the rebuild itself (which
reuses every vector it can) is :mod:`faq_search.index.build`'s.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence

from faq_search.corpus import FaqEntry
from faq_search.errors import InputError
from faq_search.index.rows import check_entries


def upserted(current: Sequence[FaqEntry], entries: Iterable[FaqEntry] | FaqEntry) -> list[FaqEntry]:
    """``current`` with ``entries`` replacing those of the same id in place, the others appended.

    ``[a, b] + [b', c] -> [a, b', c]``.
    """
    incoming = [entries] if isinstance(entries, FaqEntry) else list(entries)
    if not all(isinstance(e, FaqEntry) for e in incoming):
        raise InputError("upsert takes FaqEntry records; read a file with read_faq() to get them")
    ids = [e.id for e in incoming]
    if len(set(ids)) != len(ids):
        repeated = next(i for i in ids if ids.count(i) > 1)
        raise InputError(f"upsert got id {repeated!r} more than once; pass each entry once")
    check_entries(incoming)
    positions = _positions(current)
    updated = list(current)
    for entry in incoming:
        if entry.id in positions:
            updated[positions[entry.id]] = entry
        else:
            positions[entry.id] = len(updated)
            updated.append(entry)
    return updated


def deleted(current: Sequence[FaqEntry], ids: Iterable[str]) -> list[FaqEntry]:
    """``current`` without the entries of these ids; every id must exist and one entry must remain."""
    if isinstance(ids, str):
        raise InputError("delete takes a list of ids; wrap a single id in a list")
    wanted = list(dict.fromkeys(ids))
    positions = _positions(current)
    unknown = [i for i in wanted if i not in positions]
    if unknown:
        shown = ", ".join(repr(i) for i in unknown[:5]) + (" ..." if len(unknown) > 5 else "")
        raise InputError(f"no entry with id {shown} in the index; nothing was deleted")
    gone = set(wanted)
    kept = [e for e in current if e.id not in gone]
    if not kept:
        raise InputError("deleting every entry would leave the index empty; build a new index instead")
    return kept


def _positions(entries: Sequence[FaqEntry]) -> dict[str, int]:
    positions = {e.id: n for n, e in enumerate(entries)}
    if len(positions) != len(entries):
        raise InputError("this index holds duplicate ids; rebuild it from a file with unique ids")
    return positions
