"""Typed clients generated from an app's declarations (``charter gen client``).

``describe`` builds a neutral description of an app (``ApiDescription``); each language's
emitter renders it as source text. Like the rest of the sans-I/O core, nothing here opens a
socket or imports an event loop: the generated code does that, in the user's program.
"""

from .describe import ApiDescription, describe_app
from .output import client_drift, generate_client, write_client

__all__ = ["ApiDescription", "client_drift", "describe_app", "generate_client", "write_client"]
