"""The asyncio half: ``atransfer()`` and ``atransfer_to_writer()``.

* ``driver``: the asyncio driver, a subclass of the engine's driver that runs each
  method in steps and waits with the event loop;
* ``streams``: zero-copy into an ``asyncio.StreamWriter`` without reordering bytes.

May import: ``asyncio``, ``zerocopy._engine`` and what it may import.  Nothing outside
this package imports it eagerly: ``import zerocopy`` must not load asyncio.
"""
