"""The message flow: inbox dedupe, routing, friendly errors, the test chat CLI."""

from __future__ import annotations

import os
import selectors
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import IO

import pytest

from bot.routing import Context, Router, parse_command
from bot.transports.testchat import Sent
from tests.conftest import TEST_KEY, Harness


async def test_same_inbound_message_twice_is_processed_once(harness: Harness) -> None:
    first = await harness.chat.say("ana", "hello", message_id="wamid.1")
    again = await harness.chat.say("ana", "hello", message_id="wamid.1")
    assert len(first) == 1 and again == []
    counts = await harness.app.services.outbox.counts()
    assert sum(counts.values()) == 1


async def test_redelivery_after_restart_is_still_processed_once(harness: Harness) -> None:
    await harness.chat.say("ana", "hello", message_id="m-1")
    await harness.app.stop()
    await harness.app.start(background=False)
    assert await harness.chat.say("ana", "hello", message_id="m-1") == []


async def test_unknown_command_gets_a_one_line_hint(harness: Harness) -> None:
    await harness.member("ana")
    replies = await harness.chat.say("ana", "/frobnicate now")
    assert [r.text for r in replies] == [
        "I don't know /frobnicate. Send HELP to see the commands you can use."]


async def test_commands_are_case_insensitive_and_accept_a_bot_suffix(harness: Harness) -> None:
    await harness.member("ana")
    replies = await harness.chat.say("ana", "/GROUPS@GroundworkBot river")
    assert "riverside" in replies[0].text


async def test_help_lists_commands_by_role(harness: Harness) -> None:
    await harness.member("ana")
    await harness.member("olga")
    member_help = (await harness.chat.say("ana", "HELP"))[0].text
    admin_help = (await harness.chat.say("olga", "/help"))[0].text
    assert "/join CODE" in member_help and "/newgroup" not in member_help
    assert "/newgroup" in admin_help
    assert "hello@" in member_help or "organizers@" in member_help or "@" in member_help
    assert "STOP" in member_help


async def test_a_failing_handler_gives_a_friendly_line_and_changes_nothing(
        harness: Harness) -> None:
    broken = Router()

    @broken.command("explode", summary="always fails")
    async def explode(ctx: Context) -> None:
        await ctx.services.groups.create("boom", "Boom", "", "", None, ctx.now)
        raise RuntimeError("a bug")

    harness.app.router.include(broken)
    await harness.member("ana")
    replies = await harness.chat.say("ana", "/explode")
    assert [r.text for r in replies] == [
        "Sorry — something went wrong on our side and nothing was changed. "
        "Please try again in a moment."]
    assert "Traceback" not in replies[0].text
    assert await harness.app.services.groups.get("boom") is None


@pytest.mark.parametrize(("text", "expected"), [
    ("/rsvp 12 yes", ("rsvp", "12 yes")),
    ("/RSVP@bot 12  yes ", ("rsvp", "12  yes")),
    ("  /help", ("help", "")),
    ("/post riverside line one\nline two", ("post", "riverside line one\nline two")),
    ("hello /help", None),
    ("/", None),
    ("/123", None),
])
def test_parse_command(text: str, expected: tuple[str, str] | None) -> None:
    assert parse_command(text) == expected


def test_sent_messages_render_as_the_test_chat_prints_them() -> None:
    assert Sent(to="ana", text="one\ntwo").render() == "[to ana] one\n  two"
    assert Sent(to="@park", text="hi").render() == "[to @park] hi"


def chat_command(tmp_path: Path) -> tuple[list[str], dict[str, str]]:
    """`python -m bot chat` on a config of its own, and its environment."""
    config = tmp_path / "config.yaml"
    config.write_text(
        "organization: {name: Riverside Civic, contact: hi@rc.example, "
        "privacy_url: https://rc.example/p}\n"
        f"database: {{url: 'sqlite://{tmp_path}/chat.sqlite3'}}\n"
        f"security: {{key_file: '{tmp_path}/secret.key'}}\n"
        "admins: ['testchat:olga']\n"
        "groups:\n  - {code: riverside, name: Riverside Neighbours, area: Riverside}\n")
    env = {**os.environ, "GROUNDWORK_SECRET_KEY": TEST_KEY}
    return [sys.executable, "-m", "bot", "chat", "--config", str(config)], env


def run_chat(script: str, tmp_path: Path, stdin: str = "pipe") -> str:
    """The chat's output for `script` on its stdin: through a pipe, from a file
    (`make run < script.txt`), or /dev/null with no script (a service manager's stdin)."""
    command, env = chat_command(tmp_path)
    if stdin == "pipe":
        result = subprocess.run(command, input=script, capture_output=True, text=True, env=env,
                                timeout=120, check=False)
    else:
        source = tmp_path / "script.txt"
        source.write_text(script)
        with open(source if stdin == "file" else os.devnull, "rb") as given:
            result = subprocess.run(command, stdin=given, capture_output=True, text=True,
                                    env=env, timeout=120, check=False)
    assert result.returncode == 0, result.stderr
    assert "Traceback" not in result.stdout + result.stderr
    return result.stdout


def test_piped_transcript_of_the_quick_start(tmp_path: Path) -> None:
    out = run_chat("ana> hello\nana> YES\nana> /help\nana> STOP\nana> /groups\nana> HELP\n",
                   tmp_path)
    heads = [line for line in out.splitlines() if line.startswith("[to ")]
    assert len(heads) == 5, out
    assert heads[0].startswith("[to ana] Hi! This is Riverside Civic")  # the notice
    assert heads[1].startswith("[to ana] Welcome to Riverside Civic")  # YES confirmed
    assert heads[2].startswith("[to ana] Riverside Civic — what you can do")  # help
    assert heads[3].startswith("[to ana] You're unsubscribed")  # exactly one STOP answer
    assert heads[4].startswith("[to ana] You've stopped all messages")  # HELP after STOP
    assert out.count("unsubscribed") == 1


def test_test_chat_reads_a_script_from_a_file(tmp_path: Path) -> None:
    # A file cannot be watched by the event loop (epoll refuses it); it used to hang.
    out = run_chat("ana> hello\nana> YES\n", tmp_path, stdin="file")
    assert "[to ana] Hi! This is Riverside Civic" in out
    assert "[to ana] Welcome to Riverside Civic" in out


def test_test_chat_with_nothing_on_stdin_ends_cleanly(tmp_path: Path) -> None:
    assert "[to " not in run_chat("", tmp_path, stdin="devnull")


def test_ctrl_c_ends_the_test_chat_quietly_and_keeps_what_was_said(tmp_path: Path) -> None:
    command, env = chat_command(tmp_path)
    # Ctrl-C as a terminal sends it: SIGINT, with its default meaning restored.
    with subprocess.Popen(command, stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                          stderr=subprocess.PIPE, env=env,
                          preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL)
                          ) as chat:
        assert chat.stdin is not None and chat.stdout is not None
        chat.stdin.write(b"ana> hello\n")
        chat.stdin.flush()
        answer = read_line_starting(chat.stdout, b"[to ana]", within=60)
        chat.send_signal(signal.SIGINT)
        _, err = chat.communicate(timeout=60)
    assert answer.startswith(b"[to ana] Hi! This is Riverside Civic")
    assert chat.returncode == 130
    assert err == b""  # no traceback, nothing at all
    # The chat goes on where it was: ana is known, so YES is answered with the welcome.
    assert "[to ana] Welcome to Riverside Civic" in run_chat("ana> YES\n", tmp_path)


def read_line_starting(stream: IO[bytes], prefix: bytes, within: float) -> bytes:
    """The first line of `stream` that starts with `prefix`, waiting at most `within` s."""
    deadline = time.monotonic() + within
    with selectors.DefaultSelector() as selector:
        selector.register(stream, selectors.EVENT_READ)
        while time.monotonic() < deadline:
            if selector.select(deadline - time.monotonic()):
                line = stream.readline()
                if line.startswith(prefix) or not line:
                    return line
    raise TimeoutError(f"no line starting {prefix!r} within {within} s")


def test_test_chat_lines_without_prefix_speak_as_the_previous_speaker(tmp_path: Path) -> None:
    out = run_chat("ana> hello\nYES\n", tmp_path)
    assert "[to ana] Welcome" in out


def test_test_chat_rooms_and_multiline_output(tmp_path: Path) -> None:
    out = run_chat("olga> hi\nolga> yes\nolga@park> /linkroom riverside\n", tmp_path)
    assert "[to olga] This room is now linked to Riverside Neighbours." in out
    assert "\n  " in out  # later lines of a message are indented
