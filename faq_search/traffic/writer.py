"""Writing the question log from a server without making requests wait for the disk.

:class:`LogWriter` owns a :class:`~faq_search.traffic.log.QuestionLog` on one
background thread. A request hands it a record (``submit``, which only puts
it on a queue) and answers at once with the id it chose; the thread writes
whatever has queued up within :data:`GATHER_S` in one transaction, so 32
concurrent questions cost one wake-up of the thread and one commit, not 32.
Feedback goes through the same queue, behind the questions this process
logged before it, so feedback on a question just
answered by this process always finds it.

Limits: the queue is bounded (``max_queue``); when the disk cannot keep up
the newest records are dropped and counted (``dropped``) rather than letting
memory grow or requests wait. Records still queued when the process is
killed are lost; what was committed stays.
"""

from __future__ import annotations

import logging
import queue
import threading
import time
from concurrent.futures import Future
from dataclasses import dataclass

from faq_search.traffic.log import Feedback, QuestionLog, QuestionRecord

log = logging.getLogger("faq_search.traffic.writer")

MAX_BATCH = 512
GATHER_S = 0.05
"""After the first record of a batch arrives, the thread waits this long for more: at 200 questions a second,
one wake-up and one commit per 10 questions instead of per question. Feedback waits at most this long too."""


@dataclass
class _Stop:
    pass


@dataclass
class _Flush:
    done: Future[None]


class LogWriter:
    """A question log written on its own thread; ``submit`` never blocks."""

    def __init__(self, question_log: QuestionLog, max_queue: int = 100_000) -> None:
        self.log = question_log
        self.written = 0
        self.dropped = 0
        self._queue: queue.Queue[QuestionRecord | tuple[Feedback, Future[str | None]] | _Stop | _Flush] = queue.Queue(
            max_queue
        )
        self._thread = threading.Thread(target=self._run, name="faq-question-log", daemon=True)
        self._thread.start()

    def submit(self, record: QuestionRecord) -> None:
        """Queue a question for writing (dropped, and counted, if the queue is full)."""
        try:
            self._queue.put_nowait(record)
        except queue.Full:
            self.dropped += 1

    def feedback(self, item: Feedback) -> Future[str | None]:
        """Queue feedback; the future gives None once stored, or why it was refused."""
        done: Future[str | None] = Future()
        self._queue.put((item, done))
        return done

    def flush(self, timeout_s: float = 10.0) -> None:
        """Wait (from a worker thread, never the event loop) until what was queued before this call is written."""
        done: Future[None] = Future()
        self._queue.put(_Flush(done))
        done.result(timeout_s)

    def close(self, timeout_s: float = 10.0) -> None:
        """Write what is queued, stop the thread and close the log."""
        self._queue.put(_Stop())
        self._thread.join(timeout_s)
        self.log.close()

    def _run(self) -> None:
        stopping = False
        while not stopping:
            items = [self._queue.get()]
            if not isinstance(items[0], _Stop | _Flush):
                time.sleep(GATHER_S)
            while len(items) < MAX_BATCH:
                try:
                    items.append(self._queue.get_nowait())
                except queue.Empty:
                    break
            stopping = any(isinstance(item, _Stop) for item in items)
            records = [item for item in items if isinstance(item, QuestionRecord)]
            feedback = [item for item in items if isinstance(item, tuple)]
            try:
                refused = self.log.write(records, [item for item, _ in feedback])
                self.written += len(records)
                for (_, done), problem in zip(feedback, refused, strict=True):
                    done.set_result(problem)
                self.log.purge_if_due()
            except Exception as exc:  # the disk is full or the file went away: keep serving, say so
                log.error("question log %s: %d records not written: %s", self.log.path, len(records), exc)
                for _, done in feedback:
                    if not done.done():
                        done.set_exception(exc)
            for item in items:
                if isinstance(item, _Flush):
                    item.done.set_result(None)
