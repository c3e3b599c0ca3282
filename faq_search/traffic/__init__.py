"""Learning from the help desk's own traffic: the question log, feedback, the gaps report and the FAQ lint.

- :mod:`~faq_search.traffic.log`: :class:`QuestionLog`, questions and feedback in one SQLite file
  (its versioned schema and migrations: :mod:`~faq_search.traffic.schema`);
- :mod:`~faq_search.traffic.redact`: masking personal data before anything is written;
- :mod:`~faq_search.traffic.writer`: the log written on a background thread (for the server);
- :mod:`~faq_search.traffic.gaps` and :mod:`~faq_search.traffic.cluster`: unanswered questions by topic;
- :mod:`~faq_search.traffic.lint`: conflicts, duplicates, unreachable entries and bad fields in an FAQ file;
- :mod:`~faq_search.traffic.labels`: helpful feedback as labelled queries for ``adapt`` and ``calibrate``.

The layer sits beside quality/ and export/: it imports the index and below;
the service and the CLI import it.
"""
