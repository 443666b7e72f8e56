"""Charter's own ASGI HTTP layer: requests, responses, codecs, routing, CORS."""

from .request import Request
from .response import Response

__all__ = ["Request", "Response"]
