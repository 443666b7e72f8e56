"""Charter for bench/realtime.py: one table, ``Tick``, written with ``PUT /Tick/{id}`` and
subscribed to with ``GET /Tick/`` (``Accept: text/event-stream``, or a WebSocket on the same
path). Each record carries its sequence number ``n`` and its send time ``sent`` (microseconds),
which the subscribers read back out of every event; HarperDB's peer declares the same table
(bench/harperdb/realtime_app/schema.graphql).
"""

import os

from charter import App, Field, Table


class Tick(Table):
    id: str = Field(primary_key=True)
    n: int
    sent: int
    pad: str = ""


app = App(
    tables=[Tick],
    database=os.environ.get("BENCH_DB", "sqlite:///bench/.work/charter_realtime.db"),
)
