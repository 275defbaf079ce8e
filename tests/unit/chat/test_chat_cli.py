"""``sockjet chat``: its options, and the errors it reports instead of tracebacks."""

from __future__ import annotations

import types
from pathlib import Path
from typing import Any

import pytest

from sockjet import cli
from sockjet.cli import CLIError, build_parser, main


def test_defaults(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("XDG_DATA_HOME", str(tmp_path))
    args = build_parser().parse_args(["chat"])
    assert (args.host, args.port, args.ping_interval, args.ping_timeout) == (
        "127.0.0.1",
        5000,
        25.0,
        20.0,
    )
    assert args.database == f"sqlite:///{tmp_path}/sockjet/chat.db"
    assert args.redis is None and args.web is None
    assert args.max_message_chars == 2000
    assert args.run is cli.run_chat


def test_every_option(capsys: pytest.CaptureFixture[str]) -> None:
    args = build_parser().parse_args(
        [
            "chat",
            "--host",
            "0.0.0.0",
            "--port",
            "8000",
            "--database",
            "postgresql://db/chat",
            "--ping-interval",
            "2.5",
            "--ping-timeout",
            "1",
            "--redis",
            "redis://127.0.0.1:6379/0",
            "--web",
            "some/dir",
            "--max-message-chars",
            "100000",
            "--log-level",
            "debug",
            "--loop",
            "asyncio",
        ]
    )
    assert args.port == 8000 and args.ping_interval == 2.5 and args.ping_timeout == 1.0
    assert args.database == "postgresql://db/chat" and args.redis == "redis://127.0.0.1:6379/0"
    assert args.max_message_chars == 100_000
    with pytest.raises(SystemExit):
        main(["chat", "--help"])
    out = capsys.readouterr().out
    assert "--ping-interval SECONDS" in out and "--max-message-chars N" in out
    assert "at most 249744" in " ".join(out.split())


@pytest.mark.parametrize("value", ["0", "-5", "249745", "many", "1e3"])
def test_message_chars_must_fit_in_the_max_payload(
    value: str, capsys: pytest.CaptureFixture[str]
) -> None:
    with pytest.raises(SystemExit) as exited:
        main(["chat", "--max-message-chars", value])
    assert exited.value.code == 2
    assert "--max-message-chars" in capsys.readouterr().err


def test_the_longest_message_allowed_is_accepted() -> None:
    args = build_parser().parse_args(["chat", "--max-message-chars", "249744"])
    assert args.max_message_chars == 249_744


def test_the_message_limit_reaches_the_app(monkeypatch: pytest.MonkeyPatch) -> None:
    from sockjet.chat import service
    from sockjet.chat.store import StoreError

    seen: dict[str, Any] = {}

    class Service:
        def __init__(self, **options: Any) -> None:
            seen.update(options)
            raise StoreError("stop here")

    monkeypatch.setattr(service, "ChatService", Service)
    assert main(["chat", "--database", "sqlite://:memory:", "--max-message-chars", "7"]) == 1
    assert seen["max_message_chars"] == 7


def test_web_dir_without_a_build(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["chat", "--web", str(tmp_path)]) == 2
    assert "has no index.html" in capsys.readouterr().err


def test_unsupported_database(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["chat", "--database", "mysql://db"]) == 1
    assert "sockjet: error: unsupported database URL 'mysql://db'" in capsys.readouterr().err


def test_database_that_cannot_open(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    (tmp_path / "file").write_text("")
    code = main(["chat", "--port", "0", "--database", f"sqlite:///{tmp_path}/file/chat.db"])
    assert code == 1
    assert "sockjet: error: cannot create" in capsys.readouterr().err


def _missing(name: str) -> Any:
    def import_module(module: str) -> Any:
        raise ModuleNotFoundError(f"No module named {name!r}", name=name)

    return import_module


def test_redis_without_the_adapter(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(cli.importlib, "import_module", _missing("sockjet.adapters.redis"))
    with pytest.raises(CLIError, match="no Redis adapter"):
        cli._redis_adapter("redis://127.0.0.1")


def test_redis_without_the_redis_package(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(cli.importlib, "import_module", _missing("redis"))
    with pytest.raises(CLIError, match=r"pip install 'sockjet\[redis\]'"):
        cli._redis_adapter("redis://127.0.0.1")


def test_redis_adapter_failing_to_import_for_another_reason(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(cli.importlib, "import_module", _missing("something_else"))
    with pytest.raises(ModuleNotFoundError):
        cli._redis_adapter("redis://127.0.0.1")


def test_redis_adapter_is_built_from_the_url(monkeypatch: pytest.MonkeyPatch) -> None:
    made: list[str] = []

    def redis_adapter(url: str) -> Any:
        if not url.startswith("redis://"):
            raise ValueError("not a redis URL")
        made.append(url)
        return "factory"

    module = types.SimpleNamespace(redis_adapter=redis_adapter)
    monkeypatch.setattr(cli.importlib, "import_module", lambda name: module)
    assert cli._redis_adapter("redis://h:1/0") == "factory" and made == ["redis://h:1/0"]
    with pytest.raises(CLIError, match="--redis 'http://x': not a redis URL"):
        cli._redis_adapter("http://x")


def test_redis_adapter_kinds(monkeypatch: pytest.MonkeyPatch) -> None:
    made: list[tuple[str, str, dict[str, Any]]] = []
    modules = {
        "sockjet.adapters.redis": types.SimpleNamespace(
            redis_adapter=lambda url, **kw: made.append(("redis", url, kw)) or "pubsub"
        ),
        "sockjet.adapters.redis_streams": types.SimpleNamespace(
            redis_streams_adapter=lambda url, **kw: made.append(("streams", url, kw)) or "streams"
        ),
    }
    monkeypatch.setattr(cli.importlib, "import_module", modules.__getitem__)
    assert cli._redis_adapter("redis://h/0", "classic") == "pubsub"
    assert cli._redis_adapter("redis://h/0", "sharded") == "pubsub"
    assert cli._redis_adapter("redis://h/0", "streams") == "streams"
    assert made == [
        ("redis", "redis://h/0", {}),
        ("redis", "redis://h/0", {"sharded": True}),
        ("streams", "redis://h/0", {}),
    ]


def test_redis_adapter_and_recovery_options(capsys: pytest.CaptureFixture[str]) -> None:
    parser = cli.build_parser()
    args = parser.parse_args(["chat", "--redis", "redis://h/0", "--redis-adapter", "streams"])
    assert args.redis_adapter == "streams" and args.recovery is False
    assert parser.parse_args(["chat", "--recovery"]).recovery is True
    assert parser.parse_args(["chat"]).redis_adapter == "classic"
    with pytest.raises(SystemExit):
        parser.parse_args(["chat", "--redis-adapter", "gossip"])
    # Recovery across servers needs the streams adapter; the adapter choice needs --redis.
    assert cli.main(["chat", "--redis", "redis://h/0", "--recovery"]) == cli.EXIT_USAGE
    assert "--recovery with --redis needs --redis-adapter streams" in capsys.readouterr().err
    assert cli.main(["chat", "--redis-adapter", "sharded"]) == cli.EXIT_USAGE
    assert "--redis-adapter needs --redis" in capsys.readouterr().err
