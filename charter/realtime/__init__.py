"""Realtime (SPEC section 8): the event log's followers and the transports that serve them.

``hub`` follows the log on each worker; ``subscription`` and ``stream`` order what one
subscriber receives; ``viewer`` applies its permissions; ``sse`` is the Server-Sent Events
transport.
"""

from .events import Event, format_sse
from .subscription import Closed, Overflow

__all__ = ["Closed", "Event", "Overflow", "format_sse"]
