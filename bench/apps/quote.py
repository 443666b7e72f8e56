"""The RPC scenario's work, shared by every app: price a validated order (no database)."""

from __future__ import annotations

PRICES = {"p1": 9.5, "p2": 20.0, "p3": 3.25}


def price(product_id: str, qty: int, express: bool) -> dict[str, object]:
    total = PRICES.get(product_id, 1.0) * qty + (15.0 if express else 0.0)
    return {"product_id": product_id, "qty": qty, "total": round(total, 2)}
