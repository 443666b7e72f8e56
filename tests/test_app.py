"""``App(...)`` and its settings: no option is accepted and then silently ignored.

Options the SPEC names for features that are not built yet (MQTT, debug mode, audited tables)
raise ``CharterError`` saying so, whether given as an argument or
a ``CHARTER_*`` variable; every other setting is an ``App`` argument. Middleware and the shared
store are built: tests/test_middleware.py, tests/test_shared.py, tests/test_rate_limit.py.
"""

from __future__ import annotations

import dataclasses
import inspect
from pathlib import Path
from typing import Any

import pytest

from charter import App, CharterError, Field, Middleware, Table, rate_limit
from charter.config import Config
from charter.redaction import mask_url
from charter.testing import TestClient

SECRET = "s3cr3t-pw"


@pytest.fixture
def database(tmp_path: Path) -> str:
    return f"sqlite:///{tmp_path}/app.db"


@pytest.fixture(autouse=True)
def _clean_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ("AUTH", "SHARED", "MQTT", "DEBUG"):
        monkeypatch.delenv(f"CHARTER_{name}", raising=False)


@pytest.mark.parametrize(
    ("option", "feature"),
    [
        ({"debug": True}, "debug mode"),
    ],
    ids=["debug"],
)
def test_an_option_for_a_feature_not_built_raises(
    database: str, option: dict[str, Any], feature: str
) -> None:
    name = next(iter(option))
    with pytest.raises(CharterError) as caught:
        App(database=database, **option)
    message = str(caught.value)
    assert f"App({name}=" in message
    assert feature in message
    assert "does not provide yet" in message
    assert f"remove {name}=" in message


@pytest.mark.parametrize(
    ("variable", "value"),
    [
        ("CHARTER_DEBUG", "1"),
    ],
)
def test_a_variable_for_a_feature_not_built_raises(
    database: str, monkeypatch: pytest.MonkeyPatch, variable: str, value: str
) -> None:
    monkeypatch.setenv(variable, value)
    with pytest.raises(CharterError, match=f"{variable}.*unset {variable}"):
        App(database=database)


def test_middleware_and_a_shared_store_are_accepted_and_work(database: str) -> None:
    class Widget(Table):
        id: str = Field(primary_key=True)

    app = App(
        tables=[Widget],
        database=database,
        middleware=[Middleware(rate_limit(1, per=60), prefixurl="/Widget")],
        shared="redis://127.0.0.1:1/0",  # accepted even while unreachable: it fails closed
    )
    with TestClient(app) as client:
        assert client.get("/Widget/").status_code == 503
        assert client.get("/openapi.json").status_code == 200


def test_a_shared_store_that_is_not_redis_is_refused_without_its_secret(database: str) -> None:
    with pytest.raises(CharterError, match="the shared store is a Redis URL") as caught:
        App(database=database, shared=f"memcached://user:{SECRET}@127.0.0.1")
    assert SECRET not in str(caught.value)


def test_the_defaults_and_false_values_are_accepted(
    database: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    App(database=database, auth=False, debug=False, middleware=[], shared=None, mqtt=None)
    for variable, value in (
        ("CHARTER_AUTH", "0"),
        ("CHARTER_DEBUG", "off"),
        ("CHARTER_SHARED", ""),
        ("CHARTER_MQTT", " "),
    ):
        monkeypatch.setenv(variable, value)
    app = App(database=database)
    assert (app.config.auth, app.config.debug, app.config.shared, app.config.mqtt) == (
        False,
        False,
        None,
        None,
    )


def test_an_audit_table_option_raises() -> None:
    with pytest.raises(CharterError, match=r"Weather\(Table, audit=.*does not provide yet"):

        class Weather(Table, audit=True):
            id: str = Field(primary_key=True)
            temp: float = 0


@pytest.mark.parametrize(
    ("option", "error"),
    [
        ({"source": object}, "takes a charter.Source"),
        ({"expiration": 60}, "needs source="),
        ({"eviction": 600}, "needs source="),
        ({"scan_interval": 30}, "needs source="),
        ({"source_timeout": 2}, "needs source="),
    ],
    ids=lambda option: next(iter(option)) if isinstance(option, dict) else "",
)
def test_a_caching_table_option_without_a_source_raises(option: dict[str, Any], error: str) -> None:
    """Caching tables are built (docs/caching.md): their options work with a ``source``, and
    raise without one."""
    with pytest.raises(TypeError, match=error):

        class Weather(Table, **option):
            id: str = Field(primary_key=True)
            temp: float = 0


def test_audit_false_and_the_built_options_are_accepted() -> None:
    class Quiet(Table, audit=False, name="quiet", extra="allow", strict_queries=True):
        id: str = Field(primary_key=True)

    assert Quiet.__charter_name__ == "quiet"


# -- every setting is an App argument ------------------------------------------------------------


def test_every_setting_is_an_app_argument() -> None:
    parameters = inspect.signature(App).parameters
    for spec in dataclasses.fields(Config):
        # cors_origins is given as App(cors=CORS(allow_origins=...)).
        name = "cors" if spec.name == "cors_origins" else spec.name
        assert name in parameters, spec.name


def test_connection_limits_are_app_arguments(
    database: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    app = App(
        database=database,
        header_timeout=2,
        body_timeout=3,
        idle_timeout=4,
        send_timeout=5,
        max_url_length=100,
        max_header_size=2048,
    )
    config = app.config
    assert (config.header_timeout, config.body_timeout, config.idle_timeout) == (2, 3, 4)
    assert (config.send_timeout, config.max_url_length, config.max_header_size) == (5, 100, 2048)
    monkeypatch.setenv("CHARTER_IDLE_TIMEOUT", "9")
    assert App(database=database, idle_timeout=4).config.idle_timeout == 9  # the variable wins


@pytest.mark.parametrize(
    "option", [{"header_timeout": 0}, {"send_timeout": -1}, {"max_url_length": 0}]
)
def test_a_limit_that_is_not_positive_is_refused(database: str, option: dict[str, Any]) -> None:
    name = next(iter(option))
    with pytest.raises(ValueError, match=rf"App\({name}=...\) must be a positive number"):
        App(database=database, **option)


# -- secrets in URLs -----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("url", "shown"),
    [
        (f"postgresql://app:{SECRET}@db:5432/shop", "postgresql://app:***@db:5432/shop"),
        (f"postgres://:{SECRET}@db/shop", "postgres://:***@db/shop"),
        (f"postgresql://app:p@ss{SECRET}@db/shop", "postgresql://app:***@db/shop"),
        (
            f"postgresql://app@db/shop?sslmode=require&password={SECRET}&application_name=x",
            "postgresql://app@db/shop?sslmode=require&password=***&application_name=x",
        ),
        (f"postgresql://db/shop?sslpassword={SECRET}", "postgresql://db/shop?sslpassword=***"),
        (f"host=db password={SECRET} dbname=shop", "host=db password=*** dbname=shop"),
        ("postgresql://app@db:5432/shop", "postgresql://app@db:5432/shop"),
        ("sqlite:///./data/charter.db", "sqlite:///./data/charter.db"),
        ("sqlite:////tmp/a:b@c.db", "sqlite:////tmp/a:b@c.db"),
    ],
)
def test_mask_url_hides_passwords_only(url: str, shown: str) -> None:
    assert mask_url(url) == shown


def test_an_unsupported_database_url_is_reported_without_its_password() -> None:
    with pytest.raises(ValueError, match="unsupported database URL") as caught:
        App(database=f"mysql://app:{SECRET}@db/shop")
    assert SECRET not in str(caught.value)
    assert "mysql://app:***@db/shop" in str(caught.value)


@pytest.fixture
def collector_thresholds() -> Any:
    """The process's collector thresholds, put back after the test."""
    import gc

    saved = gc.get_threshold()
    gc.set_threshold(700, 10, 10)
    yield gc
    gc.set_threshold(*saved)


def test_starting_raises_the_collectors_first_threshold(
    database: str, collector_thresholds: Any
) -> None:
    with TestClient(App(database=database)):
        assert collector_thresholds.get_threshold() == (10_000, 10, 10)


@pytest.mark.parametrize("given", [{"gc_threshold": 0}, {"env": "0"}])
def test_a_zero_gc_threshold_leaves_the_collector_alone(
    database: str, collector_thresholds: Any, given: dict[str, Any], monkeypatch: Any
) -> None:
    if "env" in given:
        monkeypatch.setenv("CHARTER_GC_THRESHOLD", given["env"])
        app = App(database=database)
    else:
        app = App(database=database, **given)
    with TestClient(app):
        assert collector_thresholds.get_threshold() == (700, 10, 10)


def test_a_higher_threshold_of_the_process_is_kept(
    database: str, collector_thresholds: Any
) -> None:
    collector_thresholds.set_threshold(50_000, 10, 10)
    with TestClient(App(database=database, gc_threshold=20_000)):
        assert collector_thresholds.get_threshold() == (50_000, 10, 10)


def test_a_negative_gc_threshold_is_refused() -> None:
    with pytest.raises(ValueError, match="gc_threshold"):
        App(gc_threshold=-1)
