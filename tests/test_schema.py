"""Table schemas (sans-I/O) and their JSON Schema description (``GET /Table``)."""

import ast
from pathlib import Path
from typing import Annotated

import msgspec
import pytest

from charter import App, Field, Table, perms, relationship
from charter.schema import build_schema

PACKAGE = Path(__file__).resolve().parent.parent / "charter"


class Author(Table):
    id: int = Field(primary_key=True)
    name: str = Field(indexed=True, min_length=1)
    books: list["Book"] = relationship(to="author_id")


class Address(msgspec.Struct):
    city: str
    zip: str | None = None


class Book(Table):
    id: str = Field(primary_key=True)
    title: Annotated[str, Field(max_length=200, description="the full title")]
    pages: Annotated[int, Field(gt=0)] = 100
    isbn: str = Field(default="", pattern="^[0-9-]*$", indexed=True)
    author_id: int | None = Field(default=None, indexed=True)
    author: Author | None = relationship(from_="author_id")
    shipped_from: Address | None = None
    internal: str = Field(default="", returned=False)
    views: int = Field(default=0, perm=perms.R__)
    owner: str | None = Field(default=None, input=False)


def schema_of(cls):
    return build_schema(cls, cls.__charter_options__)


def test_build_schema_collects_fields_keys_and_indexes():
    schema = schema_of(Book)
    assert list(schema.fields) == [
        "id",
        "title",
        "pages",
        "isbn",
        "author_id",
        "shipped_from",
        "internal",
        "views",
        "owner",
    ]
    assert schema.primary_key == "id"
    assert schema.key_type is str
    assert schema.indexes == ["isbn", "author_id"]
    assert schema.hidden == {"internal"}
    assert schema.server_only == {"views", "owner"}
    assert schema.required_on_create == {"title"}
    assert schema.fields["title"].info.max_length == 200
    assert schema.fields["title"].info.description == "the full title"
    assert schema.fields["pages"].info.gt == 0
    assert schema.fields["pages"].info.default == 100
    assert set(schema.relationships) == {"author"}
    author = schema.relationships["author"]
    assert (author.target, author.many, author.from_, author.to) == (
        "Author",
        False,
        "author_id",
        None,
    )


def test_to_many_relationships():
    schema = schema_of(Author)
    books = schema.relationships["books"]
    assert (books.target, books.many, books.to) == ("Book", True, "author_id")
    assert "books" not in schema.fields
    assert schema.key_type is int


def test_a_table_without_a_key_gets_an_id():
    class Keyless(Table):
        text: str = ""

    schema = schema_of(Keyless)
    assert schema.primary_key == "id"
    assert list(schema.fields) == ["id", "text"]
    assert schema.generates_key


def test_declaration_errors():
    class TwoKeys(Table):
        a: str = Field(primary_key=True)
        b: str = Field(primary_key=True)

    class FloatKey(Table):
        id: float = Field(primary_key=True)

    with pytest.raises(TypeError, match="more than one primary key"):
        schema_of(TwoKeys)
    with pytest.raises(TypeError, match="must be str, int or UUID"):
        schema_of(FloatKey)
    with pytest.raises(TypeError, match="exactly one"):
        relationship()


def test_annotated_field_options_apply_on_input(serve):
    client = serve(Author, Book)
    ok = client.post("/Book/", json={"id": "b", "title": "T"})
    assert ok.status_code == 201
    assert ok.json()["pages"] == 100
    too_long = client.post("/Book/", json={"title": "x" * 201})
    assert too_long.json()["error"]["details"][0]["code"] == "STRING_CONSTRAINT"
    zero_pages = client.post("/Book/", json={"title": "x", "pages": 0})
    assert zero_pages.json()["error"]["details"][0]["code"] == "NUMERIC_CONSTRAINT"
    bad_isbn = client.post("/Book/", json={"title": "x", "isbn": "abc"})
    assert bad_isbn.json()["error"]["details"][0]["code"] == "STRING_CONSTRAINT"


def test_json_schema_of_a_table(serve):
    client = serve(Author, Book)
    described = client.get("/Book").json()
    assert described == client.app.describe("Book")
    assert described["title"] == "Book"
    assert described["$id"] == "/Book"
    assert described["x-primaryKey"] == "id"
    assert described["x-indexes"] == ["id", "isbn", "author_id"]
    assert described["x-relationships"] == {
        "author": {"target": "Author", "many": False, "from": "author_id", "to": None}
    }
    properties = described["properties"]
    assert list(properties) == [
        "id",
        "title",
        "pages",
        "isbn",
        "author_id",
        "shipped_from",
        "views",
        "owner",
    ]
    assert properties["title"] == {
        "type": "string",
        "maxLength": 200,
        "description": "the full title",
    }
    assert properties["pages"] == {"type": "integer", "exclusiveMinimum": 0, "default": 100}
    assert properties["isbn"]["pattern"] == "^[0-9-]*$"
    assert properties["views"]["readOnly"] is True
    assert properties["owner"]["readOnly"] is True
    assert "readOnly" not in properties["title"]
    assert described["required"] == ["id", "title"]
    address_ref = properties["shipped_from"]["anyOf"][0]["$ref"]
    assert address_ref == "#/$defs/Address"
    assert described["$defs"]["Address"]["required"] == ["city"]
    assert "additionalProperties" not in described

    author = client.get("/Author").json()
    assert author["x-relationships"]["books"] == {
        "target": "Book",
        "many": True,
        "from": None,
        "to": "author_id",
    }
    assert author["properties"]["id"] == {"type": "integer"}
    assert author["properties"]["name"]["minLength"] == 1


def test_describing_a_table_needs_no_running_app(database):
    app = App(tables=[Author, Book], database=database)
    assert app.describe("Author")["title"] == "Author"


FORBIDDEN_IN_SANS_IO = {
    "asyncio",
    "sqlite3",
    "socket",
    "uvicorn",
    "httpx",
    "asyncpg",
    "charter.http",
    "charter.storage",
    "charter.app",
    "charter.web.dispatch",
    "charter.runtime.tables",
    "charter.runtime.transaction",
}


def absolute_imports(path: Path) -> set[str]:
    package = "charter." + path.parent.name
    names: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            if node.level == 0:
                names.add(node.module or "")
                continue
            base = package.rsplit(".", node.level - 1)[0] if node.level > 1 else package
            module = f"{base}.{node.module}" if node.module else base
            names.add(module)
            names.update(f"{module}.{alias.name}" for alias in node.names)
    return names


@pytest.mark.parametrize("folder", ["schema", "query"])
def test_the_sans_io_core_imports_no_io(folder):
    files = sorted((PACKAGE / folder).glob("*.py"))
    assert files
    assert (PACKAGE / folder / "README.md").exists()
    for path in files:
        for name in absolute_imports(path):
            for forbidden in FORBIDDEN_IN_SANS_IO:
                assert not (name == forbidden or name.startswith(forbidden + ".")), (
                    f"{path.name} imports {name}"
                )
