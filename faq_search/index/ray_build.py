"""Indexing on a Ray cluster: Ray Data reads the FAQ shards and runs the encoder calls in an actor pool.

What is distributed is what costs: reading the shards (one Ray task per file,
each with faq-search's own reader, so a cell parses exactly as in a local run;
pyarrow's CSV reader would turn an id ``007`` into the number 7) and the
encoder calls (one model load per actor). Everything else stays on the driver
and is the local code path: which texts become rows, which vectors are reused
from the previous bundle or resumed from the cache, the bundle writer.

Why the bundle equals a local run's: the driver cuts the texts into the very
encoder calls a local build makes (:func:`faq_search.index.build.encode_groups`,
equal token length, at most :data:`~faq_search.index.build.CACHE_CHUNK` texts),
sends each call as one Ray row, and places the vectors that come back by the
call's index. Ray Data does not keep order (``preserve_order`` is off by
default, and a retried or slower actor finishes late), so nothing here relies
on arrival order. Every forward pass then holds the same texts as locally, so
the vectors are byte-identical, in bf16 too (where a vector does depend on its
batch) — provided every node runs the same library versions and resolves the
same precision, which each actor reports and the driver checks.

Ray pitfalls handled here: an actor pool that takes every CPU starves Ray
Data's read tasks (ray-project/ray#44687), so shards are read in a pass of
their own before the pool starts; each actor pins torch to its own CPUs (Ray
sets ``OMP_NUM_THREADS`` to them, torch's default would be the whole node);
results stream back to the driver (``iter_batches``) and go to the resume
cache as they come, so the object store holds a few calls' vectors, not all
of them; actors are restarted and their calls retried when a worker dies.
"""

from __future__ import annotations

import glob
import json
import logging
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from faq_search.corpus import FORMATS, FaqEntry, merge_duplicate_answers, read_faq
from faq_search.encoding.protocol import Encoder
from faq_search.errors import FaqSearchError, InputError, ModelError
from faq_search.index.engine import Engine

if TYPE_CHECKING:
    from faq_search.index.build import BuildOptions
    from faq_search.index.faq_index import FaqIndex

__all__ = ["INSTALL_HINT", "Engine", "RayEngine", "ReadOptions", "index_on_ray", "ray_session", "read_faq_shards"]

INSTALL_HINT = "Ray is not installed; install the extra with `pip install 'faq-search[ray]'` or use --engine local"


def import_ray() -> Any:
    """The ``ray`` module with Ray Data, or an InputError that says how to install it."""
    try:
        import ray
        import ray.data  # the [data] part of the extra
    except ImportError:
        raise InputError(INSTALL_HINT) from None
    return ray


@contextmanager
def ray_session(address: str | None = None) -> Iterator[Any]:
    """Ray, connected: to ``address`` (``auto``, ``ray://host:port`` or a GCS address), else a new local cluster.

    A session already open in this process (a test fixture, a notebook) is
    used as it is and left open; one started here is shut down on exit.
    """
    ray = import_ray()
    started_here = not ray.is_initialized()
    if started_here:
        try:
            ray.init(address=address, include_dashboard=False, log_to_driver=False, logging_level=logging.WARNING)
        except (ConnectionError, ValueError, RuntimeError) as exc:
            where = address or "a local cluster"
            raise InputError(f"cannot start or reach Ray at {where} ({_first_line(exc)}); check --address") from None
    context = ray.data.DataContext.get_current()
    logger = logging.getLogger("ray.data")
    before = (context.enable_progress_bars, context.print_on_execution_start, logger.level)
    context.enable_progress_bars = False  # faq-search draws its own bar; Ray Data's would interleave with it
    context.print_on_execution_start = False
    logger.setLevel(logging.WARNING)
    try:
        yield ray
    finally:
        context.enable_progress_bars, context.print_on_execution_start = before[:2]
        logger.setLevel(before[2])
        if started_here:
            ray.shutdown()


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip()
    return text.splitlines()[0] if text else type(exc).__name__


def _ray_failure(exc: BaseException) -> FaqSearchError:
    """A failure of Ray itself (a node lost for good, the cluster gone) as faq-search's own error.

    faq-search's own errors inside a task do not travel as exceptions (Ray
    loses their type on the way back): tasks return them as an ``error`` column.
    """
    return ModelError(f"the Ray run failed ({_first_line(exc)}); see the Ray logs of the cluster")


# -- reading ------------------------------------------------------------------


def shard_paths(source: str | Path) -> list[Path]:
    """The FAQ files of ``source``: itself, the FAQ files directly in a directory, or a glob's matches, sorted."""
    text = str(source)
    path = Path(text)
    if path.is_dir():
        found = sorted(p for p in path.iterdir() if p.is_file() and p.suffix.lower() in FORMATS)
    elif path.exists():
        found = [path]
    else:
        found = sorted(Path(p) for p in glob.glob(text) if Path(p).is_file())
    if not found:
        raise InputError(f"{source}: no FAQ file there (a file, a directory of shards or a glob); check the path")
    return found


@dataclass(frozen=True)
class ReadOptions:
    """How each shard is read: the options of :func:`faq_search.corpus.read_faq`."""

    answer_column: str = "answer"
    question_column: str | Sequence[str] | None = None
    id_column: str | None = None
    file_format: str | None = None
    keep_duplicate_answers: bool = False


def _read_shards(batch: dict[str, np.ndarray], options: ReadOptions) -> dict[str, np.ndarray]:
    """Ray Data task: the entries of each shard in ``batch``, as JSON, with their shard and position."""
    shards, positions, records, errors = [], [], [], []
    for shard, path in zip(batch["shard"].tolist(), batch["path"].tolist(), strict=True):
        try:
            entries = read_faq(
                path,
                answer_column=options.answer_column,
                question_column=options.question_column,
                id_column=options.id_column,
                file_format=options.file_format,
                keep_duplicate_answers=True,  # merged across shards on the driver
            )
        except FaqSearchError as exc:  # sent back as data: Ray would lose the exception's type and message shape
            shards.append(shard)
            positions.append(-1)
            records.append("")
            errors.append(str(exc))
            continue
        shards += [shard] * len(entries)
        positions += range(len(entries))
        records += [json.dumps(entry.to_dict(), ensure_ascii=False) for entry in entries]
        errors += [""] * len(entries)
    return {
        "shard": np.asarray(shards, dtype=np.int64),
        "position": np.asarray(positions, dtype=np.int64),
        "entry": np.asarray(records, dtype=object),
        "error": np.asarray(errors, dtype=object),
    }


def read_faq_shards(source: str | Path, options: ReadOptions | None = None) -> list[FaqEntry]:
    """Read an FAQ file, directory or glob of shards with Ray Data (in a session :func:`ray_session` opened).

    The entries come in shard order (sorted file names), then file order, so
    one file gives exactly :func:`~faq_search.corpus.read_faq`'s entries; equal
    answers are merged across shards (unless ``keep_duplicate_answers``) and
    ids must be unique across them.
    """
    ray = import_ray()
    options = options or ReadOptions()
    paths = shard_paths(source)
    items = [{"shard": i, "path": str(p.resolve())} for i, p in enumerate(paths)]
    dataset = ray.data.from_items(items, override_num_blocks=len(items)).map_batches(
        _read_shards, fn_kwargs={"options": options}, batch_size=1, batch_format="numpy"
    )
    try:
        found = sorted(
            (int(r["shard"]), int(r["position"]), str(r["entry"]), str(r["error"])) for r in dataset.iter_rows()
        )
    except Exception as exc:  # Ray's own failures arrive in Ray's types
        raise _ray_failure(exc) from None
    problems = [error for *_, error in found if error]
    if problems:
        raise InputError(problems[0])
    rows = [(shard, position, record) for shard, position, record, _ in found]
    entries = [FaqEntry.from_dict(json.loads(record)) for _, _, record in rows]
    if not entries:
        raise InputError(f"{source}: the FAQ has no entries; add at least one answer")
    if not options.keep_duplicate_answers:
        entries = merge_duplicate_answers(entries)
    seen: set[str] = set()
    for entry in entries:
        if entry.id in seen:
            raise InputError(f"{source}: id {entry.id!r} appears in more than one row or shard; make ids unique")
        seen.add(entry.id)
    return entries


# -- encoding -----------------------------------------------------------------


def bert_encoder(settings: dict[str, Any], batch_size: int, threads: int) -> Encoder:
    """A :class:`~faq_search.encoding.encoder.BertEncoder` built inside an actor (the default recipe)."""
    from faq_search.encoding.encoder import BertEncoder
    from faq_search.encoding.settings import EncoderSettings

    return BertEncoder(EncoderSettings.from_dict(settings), batch_size=batch_size, threads=threads)


class _EncodeActor:
    """Ray Data actor: one encoder per actor, loaded once, encoding one call (unit) per row it is given."""

    def __init__(self, recipe: Callable[[], Encoder]) -> None:
        self.encoder: Encoder | None = None
        self.stamp = ""
        try:
            self.encoder = recipe()
            self.stamp = json.dumps({**self.encoder.identity.to_dict(), "precision": self.encoder.precision.value})
        except FaqSearchError as exc:  # a model this node cannot load: reported as data (a raise would restart it)
            self.problem = str(exc)

    def __call__(self, batch: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        if self.encoder is None:
            vectors = [b""] * len(batch["unit"])
            stamps = ["error: " + self.problem] * len(vectors)
        else:
            vectors = [self.encoder.encode([str(t) for t in texts]).tobytes() for texts in batch["texts"]]
            stamps = [self.stamp] * len(vectors)
        return {
            "unit": np.asarray(batch["unit"], dtype=np.int64),
            "vectors": np.asarray(vectors, dtype=object),
            "stamp": np.asarray(stamps, dtype=object),
        }


@dataclass(frozen=True)
class RayEngine:
    """Encoder calls on a Ray cluster: an actor pool, one model load per actor (see the module docstring).

    ``address``: the cluster (None: a session already open in this process, else a
    new local one). ``actors``: pool size (default: the cluster's CPUs divided by
    ``cpus_per_actor``); ``threads``: torch threads per actor (default
    ``cpus_per_actor``); ``batch_size``: as for a local run, and it must be the
    same for the vectors to be the same. ``recipe`` builds each actor's encoder
    (default: a BertEncoder with the driver encoder's settings; tests pass a fake).
    """

    address: str | None = None
    actors: int | None = None
    cpus_per_actor: float = 1
    threads: int | None = None
    batch_size: int = 64
    recipe: Callable[[], Encoder] | None = None
    block_order_seed: int | None = None  # process the calls in a shuffled block order (tests show it changes nothing)

    def encode_units(self, encoder: Encoder, units: Sequence[Sequence[str]]) -> Iterator[tuple[int, np.ndarray]]:
        """Vectors of each unit (encoder call) as the actors finish them, in any order."""
        if not units:
            return
        with ray_session(self.address) as ray:
            yield from self._run(ray, encoder, units)

    def _run(self, ray: Any, encoder: Encoder, units: Sequence[Sequence[str]]) -> Iterator[tuple[int, np.ndarray]]:
        import functools

        threads = self.threads or max(1, int(self.cpus_per_actor))
        recipe = self.recipe or functools.partial(
            bert_encoder, encoder.settings.to_dict(), batch_size=self.batch_size, threads=threads
        )
        actors = self.actors or max(1, int(ray.cluster_resources().get("CPU", 1) // self.cpus_per_actor))
        actors = min(actors, len(units))
        items = [{"unit": i, "texts": list(texts)} for i, texts in enumerate(units)]
        dataset = ray.data.from_items(items, override_num_blocks=min(len(items), actors * 4))
        if self.block_order_seed is not None:
            dataset = dataset.randomize_block_order(seed=self.block_order_seed)
        dataset = dataset.map_batches(
            _EncodeActor,
            fn_constructor_args=(recipe,),
            batch_size=1,
            batch_format="numpy",
            compute=ray.data.ActorPoolStrategy(size=actors),
            num_cpus=self.cpus_per_actor,
        )  # Ray Data restarts a dead actor and retries its calls (max_restarts, max_task_retries -1 by default)
        expected = json.dumps({**encoder.identity.to_dict(), "precision": encoder.precision.value})
        dimension = encoder.dimension
        try:
            for batch in dataset.iter_batches(batch_size=None, batch_format="numpy", prefetch_batches=1):
                for unit, data, stamp in zip(batch["unit"], batch["vectors"], batch["stamp"], strict=True):
                    if str(stamp).startswith("error: "):
                        raise ModelError(f"a Ray worker cannot load the encoder: {str(stamp)[7:]}")
                    if stamp != expected:
                        raise ModelError(
                            "a Ray worker's encoder differs from the driver's (model, settings or precision: "
                            f"{_difference(expected, str(stamp))}); install the same faq-search, model and "
                            "libraries on every node, or set --precision explicitly"
                        )
                    vectors = np.frombuffer(bytes(data), dtype=np.float32).reshape(-1, dimension)
                    yield int(unit), vectors.copy()
        except FaqSearchError:
            raise
        except Exception as exc:  # Ray's own failures arrive in Ray's types
            raise _ray_failure(exc) from None


def _difference(expected: str, seen: str) -> str:
    want, got = json.loads(expected), json.loads(seen)
    keys = [k for k in want if want.get(k) != got.get(k)]
    return ", ".join(f"{k} {got.get(k)!r} instead of {want.get(k)!r}" for k in keys) or "unknown"


def index_on_ray(
    path: str | Path,
    source: str | Path,
    options: BuildOptions | None = None,
    *,
    read: ReadOptions | None = None,
    address: str | None = None,
    actors: int | None = None,
    source_name: str | None = None,
    full: bool = False,
    keep_adapted: bool = True,
) -> FaqIndex:
    """``faq-search index SOURCE --out PATH --engine ray``: read the shards and encode on Ray, write ``path``.

    ``source`` is a file, a directory of shards or a glob. ``options`` and the
    keywords after ``actors`` are those of :func:`faq_search.index.update.update_bundle`
    (its ``engine`` is set here; its ``threads`` and ``batch_size`` are each
    actor's); reuse of the bundle at ``path``, the resume cache and the written
    bundle are as in a local run.
    """
    from faq_search.index.build import BuildOptions
    from faq_search.index.update import update_bundle

    options = options or BuildOptions()
    engine = RayEngine(address=address, actors=actors, threads=options.threads, batch_size=options.batch_size)
    with ray_session(address):
        entries = read_faq_shards(source, read)
        name = source_name or Path(str(source)).name
        return update_bundle(
            path, entries, options.revised(engine=engine), source_name=name, full=full, keep_adapted=keep_adapted
        )
