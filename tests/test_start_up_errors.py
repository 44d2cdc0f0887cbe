"""What stops the bot at start-up is one line for the operator, not a traceback: a
database that cannot be reached (named, never with its password, and why), an address
the webhook server cannot take."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
from pathlib import Path

import pytest

from bot.storage.db import shown_url
from tests.conftest import TEST_KEY
from tests.procs import free_port

CONFIG = ("organization: {{name: Riverside Civic, contact: hi@rc.example, "
          "privacy_url: https://rc.example/p}}\n"
          "database: {{url: '{url}'}}\n"
          "security: {{key_file: '{key_file}'}}\n"
          "server: {{host: 127.0.0.1, port: {port}}}\n"
          "workers: {{processors: {processors}}}\n"
          "{extra}")


def start(command: str, url: str, tmp_path: Path, port: int = 0, processors: int = 0,
          extra: str = "", key_file: Path | None = None) -> subprocess.CompletedProcess[str]:
    """`python -m bot COMMAND` on a config of its own; with `key_file`, the key is read
    from there rather than from the environment."""
    config = tmp_path / "config.yaml"
    config.write_text(CONFIG.format(url=url, key_file=key_file or tmp_path / "secret.key",
                                    port=port or free_port(), processors=processors,
                                    extra=extra))
    env = {k: v for k, v in os.environ.items() if k != "GROUNDWORK_SECRET_KEY"}
    if key_file is None:
        env["GROUNDWORK_SECRET_KEY"] = TEST_KEY
    return subprocess.run([sys.executable, "-m", "bot", command, "--config", str(config)],
                          capture_output=True, text=True, timeout=120, check=False,
                          stdin=subprocess.DEVNULL, env=env)


@pytest.mark.parametrize("command", ["run", "migrate"])
def test_a_postgres_server_that_is_not_there_is_named_in_one_line(
        command: str, tmp_path: Path) -> None:
    url = f"postgres://groundwork:s3cret@127.0.0.1:{free_port()}/movement"
    result = start(command, url, tmp_path)
    assert result.returncode == 1
    assert "Traceback" not in result.stderr
    errors = [line for line in result.stderr.splitlines() if line.startswith("error:")]
    assert len(errors) == 1, result.stderr
    assert "postgres://groundwork:***@127.0.0.1:" in errors[0]
    assert "/movement" in errors[0] and "refused" in errors[0]
    assert "s3cret" not in result.stderr + result.stdout


def test_a_sqlite_file_that_cannot_be_made_is_named_in_one_line(tmp_path: Path) -> None:
    blocker = tmp_path / "not-a-folder"
    blocker.write_text("")  # a file where the database's folder would go
    result = start("chat", f"sqlite://{blocker}/bot.sqlite3", tmp_path)
    assert result.returncode == 1
    assert "Traceback" not in result.stderr
    assert result.stderr.startswith(f"error: cannot open the database at sqlite://{blocker}")
    assert "create and write" in result.stderr


def test_shown_url_masks_only_the_password() -> None:
    assert (shown_url("postgres://bot:pw@db.example:5432/groundwork?ssl=require")
            == "postgres://bot:***@db.example:5432/groundwork?ssl=require")
    assert shown_url("postgres://bot@db/groundwork") == "postgres://bot@db/groundwork"
    assert shown_url("sqlite://data/groundwork.sqlite3") == "sqlite://data/groundwork.sqlite3"


def test_a_port_already_taken_is_named_in_one_line(tmp_path: Path) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        # With a processing child: it was started before the server, and ends with it.
        result = start("run", f"sqlite://{tmp_path}/bot.sqlite3", tmp_path, port=port,
                       processors=1)
    assert result.returncode == 1
    assert "Traceback" not in result.stderr
    errors = [line for line in result.stderr.splitlines() if line.startswith("error:")]
    assert errors == [f"error: cannot listen on 127.0.0.1:{port}: Address already in use. "
                      "Is another copy of the bot running? server.port in the config sets "
                      "the port."], result.stderr


def test_a_telegram_bot_api_that_cannot_be_reached_is_named_in_one_line(
        tmp_path: Path) -> None:
    base = f"http://127.0.0.1:{free_port()}"
    result = start("run", f"sqlite://{tmp_path}/bot.sqlite3", tmp_path, extra=(
        "transports:\n  telegram: {enabled: true, token: '123:ABC', "
        f"api_base_url: '{base}'}}\n"))
    assert result.returncode == 1
    assert "Traceback" not in result.stderr
    assert "Unclosed" not in result.stderr  # what had started was closed
    errors = [line for line in result.stderr.splitlines() if line.startswith("error:")]
    assert len(errors) == 1, result.stderr
    assert errors[0].startswith(f"error: telegram: cannot reach Telegram's Bot API at {base}")
    assert "123:ABC" not in result.stderr  # the token is a secret


def test_a_key_file_that_cannot_be_made_is_named_in_one_line(tmp_path: Path) -> None:
    blocker = tmp_path / "not-a-folder"
    blocker.write_text("")
    result = start("chat", f"sqlite://{tmp_path}/bot.sqlite3", tmp_path,
                   key_file=blocker / "secret.key")
    assert result.returncode == 2
    assert "Traceback" not in result.stderr
    assert result.stderr.startswith(f"error: {blocker / 'secret.key'}: cannot read or "
                                    "create the key file (")  # then the system's reason
    assert result.stderr.endswith("); set GROUNDWORK_SECRET_KEY, or security.key_file to a "
                                  "path the bot may write\n")
    assert result.stderr.count("\n") == 1
