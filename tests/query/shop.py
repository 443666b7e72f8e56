"""A small shop with every kind of relationship, shared by the query tests."""

from __future__ import annotations

from charter import Field, Table, relationship


class Country(Table):
    id: str = Field(primary_key=True)
    name: str = Field(indexed=True)


class Brand(Table):
    id: str = Field(primary_key=True)
    name: str = Field(indexed=True)
    country_id: str | None = Field(default=None, indexed=True)
    country: Country | None = relationship(from_="country_id")
    products: list[Product] = relationship(to="brand_id")


class Product(Table):
    id: str = Field(primary_key=True)
    name: str = Field(indexed=True)
    price: float = Field(indexed=True, ge=0)
    stock: int = 0
    active: bool = True
    tags: list[str] = []
    brand_id: str | None = Field(default=None, indexed=True)
    brand: Brand | None = relationship(from_="brand_id")
    reviews: list[Review] = relationship(to="product_id")
    cost: float = Field(default=0, returned=False)


class Review(Table):
    id: str = Field(primary_key=True)
    product_id: str = Field(indexed=True)
    stars: int = Field(indexed=True)
    secret: bool = False

    def allow_read(self, user) -> bool:
        return not self.secret


class Bundle(Table):
    id: str = Field(primary_key=True)
    title: str = ""
    product_ids: list[str] = []
    products: list[Product] = relationship(from_="product_ids")


class Strict(Table, strict_queries=True):
    id: str = Field(primary_key=True)
    code: str = Field(indexed=True)
    note: str = ""


TABLES = [Country, Brand, Product, Review, Bundle, Strict]

COUNTRIES = [{"id": "fr", "name": "France"}, {"id": "jp", "name": "Japan"}]
BRANDS = [
    {"id": "acme", "name": "Acme", "country_id": "fr"},
    {"id": "zen", "name": "Zen", "country_id": "jp"},
    {"id": "solo", "name": "Solo"},
]
PRODUCTS = [
    {"id": "p1", "name": "Air Max", "price": 120.0, "stock": 5, "tags": ["run", "red"],
     "brand_id": "acme", "cost": 50.0},
    {"id": "p2", "name": "Air Lite", "price": 80.0, "stock": 0, "tags": ["run"],
     "brand_id": "acme"},
    {"id": "p3", "name": "Trail Max", "price": 95.5, "stock": 2, "tags": ["trail"],
     "brand_id": "zen"},
    {"id": "p4", "name": "Cap", "price": 20.0, "stock": 10, "tags": [], "brand_id": None,
     "active": False},
    {"id": "p5", "name": "Sock & Co (pair)", "price": 5.0, "stock": 100, "tags": ["red"],
     "brand_id": "solo"},
]  # fmt: skip
REVIEWS = [
    {"id": "r1", "product_id": "p1", "stars": 5},
    {"id": "r2", "product_id": "p1", "stars": 3},
    {"id": "r3", "product_id": "p3", "stars": 4},
    {"id": "r4", "product_id": "p1", "stars": 1, "secret": True},
]
BUNDLES = [
    {"id": "b1", "title": "Runner", "product_ids": ["p2", "p1"]},
    {"id": "b2", "title": "Empty", "product_ids": []},
]


def ids(response) -> list[str]:
    assert response.status_code == 200, response.text
    return [r["id"] for r in response.json()]
