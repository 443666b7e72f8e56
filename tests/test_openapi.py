"""``GET /openapi.json``: a valid OpenAPI 3.1 document that the served app honours."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import httpx
import msgspec
from openapi_spec_validator import validate

from charter import (
    App,
    Contract,
    Field,
    Service,
    Table,
    endpoint_error_schema,
    get,
    perms,
    post,
    route,
    rpc,
)
from charter.testing import TestClient
from tests.servers import Server

ROOT = Path(__file__).resolve().parent.parent


class Point(msgspec.Struct):
    x: int
    y: int


class Shape(Table):
    id: str = Field(primary_key=True)
    name: str = Field(indexed=True, min_length=1)
    points: list[Point] = []
    secret: str = Field(default="", returned=False)

    @get
    def size(self) -> int:
        return len(self.points)

    @post
    @staticmethod
    async def scale(factor: float, names: list[str] | None = None) -> dict[str, float]:
        return {"factor": factor}


class Geometry(Service):
    @rpc(egroup="geo", perm=perms.R_X)
    async def area(self, width: float, height: float) -> float:
        return width * height


@route(
    "POST",
    "/check/{kind}",
    contract=Contract(
        payload={"type": "object", "properties": {"key": {"type": "string"}}, "required": ["key"]},
        response=[Point, endpoint_error_schema(http_status=[404], code=["NO_KEY"])],
        roles=["admin"],
    ),
)
async def check(kind: str, payload: dict) -> Point:
    return Point(1, 2)


def _app(tmp_path: Path) -> App:
    return App(
        tables=[Shape],
        services=[Geometry],
        routes=[check],
        database=f"sqlite:///{tmp_path}/o.db",
    )


def test_the_document_is_valid_openapi_3_1(tmp_path: Path) -> None:
    with TestClient(_app(tmp_path)) as client:
        doc = client.get("/openapi.json").json()
    validate(doc)
    assert doc["openapi"] == "3.1.0"
    paths = doc["paths"]
    for path in ("/Shape", "/Shape/", "/Shape/{id}", "/Shape/{id}/size", "/Shape/scale"):
        assert path in paths, path
    assert set(paths["/Shape/{id}"]) >= {"get", "put", "patch", "delete", "parameters"}
    assert paths["/rpc/area"]["post"]["x-egroup"] == "geo"
    assert paths["/rpc/area"]["post"]["x-perm"] == perms.R_X
    assert paths["/check/{kind}"]["post"]["x-roles"] == ["admin"]
    schemas = doc["components"]["schemas"]
    assert "secret" not in schemas["Shape"]["properties"]  # returned=False stays out
    assert schemas["Error"]["required"] == ["error"]
    # Auth is off: no security scheme may suggest that requests sign in.
    assert "securitySchemes" not in doc["components"]
    assert "security" not in doc
    search_params = {p["name"] for p in paths["/Shape/"]["get"]["parameters"]}
    assert {"id", "name", "points"} <= search_params


def test_the_shop_example_is_valid_and_honours_its_document(tmp_path: Path) -> None:
    """Schemathesis against the served shop example: no 5xx, no response off the document."""
    cli = shutil.which("schemathesis", path=str(Path(sys.executable).parent))
    assert cli is not None, "schemathesis is a dev dependency"
    server = Server(
        str(ROOT / "examples" / "shop" / "app.py"), "--database", f"sqlite:///{tmp_path}/shop.db"
    ).start()
    try:
        validate(httpx.get(server.url + "/openapi.json").json())
        run = subprocess.run(
            [
                cli,
                "run",
                server.url + "/openapi.json",
                "--checks",
                "not_a_server_error,response_schema_conformance",
                "--max-examples",
                "25",
                "--seed",
                "7",
                "--workers",
                "1",
            ],
            capture_output=True,
            text=True,
            timeout=600,
        )
    finally:
        log = server.stop()
    assert run.returncode == 0, run.stdout[-4000:] + run.stderr[-2000:]
    assert "unhandled error" not in log  # every 500 is logged with this line
