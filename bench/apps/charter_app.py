import os

from charter import App, Field, Table


class Item(Table):
    id: str = Field(primary_key=True)
    name: str
    category: str = Field(indexed=True)
    price: float = Field(ge=0)
    stock: int = 0


app = App(tables=[Item], database=os.environ.get("BENCH_DB", "sqlite:///bench/.work/charter.db"))
