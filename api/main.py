"""ASGI entry point for uvicorn: ``api.main:app`` (``sinergi serve`` and every server process).

The garbage collector of a server process: what exists once the app is built (modules, the
app, its routes and models: hundreds of thousands of objects that live as long as the process)
is moved out of its reach (``gc.freeze``), and its youngest generation is collected every 20,000
allocations instead of every 700. A request allocates thousands of short-lived objects (rows,
models, JSON); with the defaults the collector ran many times a request and walked the whole
heap every few requests, which is where the slowest replies' time went (bench/README.md: p99 of
the read 215 -> 88 ms without auditing, the push 0.51 -> 0.62 of the storage floor).
Reference cycles are still collected, only less often.
"""

import gc

from api.app import create_app

app = create_app()

gc.collect()
gc.freeze()
gc.set_threshold(20_000, 50, 100)
