"""The pydantic models of the FastAPI peers (SQLite and PostgreSQL), written as FastAPI's docs
suggest: strict, extra properties forbidden."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field


class ItemIn(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True)

    id: str | None = None
    name: str
    category: str
    price: float = Field(ge=0)
    stock: int = 0


class Item(BaseModel):
    id: str
    name: str
    category: str
    price: float
    stock: int


class Address(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True)

    city: str
    zip: str = Field(min_length=4, max_length=10)


class Order(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True)

    product_id: str
    qty: int = Field(ge=1)
    address: Address
    tags: list[str] = []
    express: bool = False


class QuoteIn(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True)

    order: Order


class Quote(BaseModel):
    product_id: str
    qty: int
    total: float
