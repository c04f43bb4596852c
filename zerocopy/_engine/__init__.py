"""The engine: what one transfer does, whichever backend moves the bytes.

What lives here, in data-path order:

* ``endpoints``: what each fd is (kind, seekable, pollable, buffered, position);
* ``plan``: the decision table (the one place that says which methods a pair of
  endpoint kinds gets, in which order, and what is skipped and why);
* ``driver``: everything that is not I/O (validation, read-ahead, fallbacks,
  positions, the result and the errors), and the blocking driver;
* ``fastpath``: hands the table to the compiled core's one-call fast path;
* ``transfer``: the public ``transfer()`` and ``plan()``.

May import: ``zerocopy._constants``, ``_types``, ``_errors``, ``_fd``, ``_pipes`` and
``zerocopy._backends``; never ``zerocopy._aio`` or ``zerocopy._cli``, which import it.
"""
