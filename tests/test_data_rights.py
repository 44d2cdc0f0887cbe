"""Privacy at rest, /mydata, /forgetme, /why, and the export-member command."""

from __future__ import annotations

import asyncio
import base64
import json
import os
import re
import stat
import sys
from pathlib import Path

import pytest
from cryptography.fernet import Fernet

from bot.services.crypto import Vault, VaultKeyError, _derive, load_master_key
from tests.conftest import TEST_KEY, Harness, make_config, start_harness

PHONE = "15557654321"


def sqlite_bytes(url: str) -> bytes:
    """The database file and its WAL, as they are on disk."""
    path = Path(url.removeprefix("sqlite://").split("?")[0])
    data = b""
    for suffix in ("", "-wal", "-shm"):
        part = Path(str(path) + suffix)
        if part.exists():
            data += part.read_bytes()
    return data


async def test_sqlite_file_never_holds_a_phone_number_in_clear(sqlite_harness: Harness) -> None:
    h = sqlite_harness
    await h.member(PHONE, "riverside")
    for text in ("/mydata", "/mygroups", "/name river-friend", "/why", "hello"):
        await h.chat.say(PHONE, text)
    data = sqlite_bytes(h.config.database.url)
    assert data, "the database file should exist"
    assert PHONE.encode() not in data
    assert PHONE.encode("utf-16-le") not in data


async def test_mydata_shows_profile_consent_and_groups(harness: Harness) -> None:
    await harness.member("ana", "riverside")
    replies = await harness.chat.say("ana", "/mydata")
    text = replies[0].text
    assert "Everything we hold about you" in text
    assert "granted via testchat YES" in text
    assert "riverside (member, active)" in text
    assert "Name: Ana" in text


async def test_forgetme_asks_for_confirmation_first(harness: Harness) -> None:
    await harness.member("ana")
    replies = await harness.chat.say("ana", "/forgetme")
    assert "/forgetme confirm" in replies[0].text
    assert await harness.app.services.members.find("testchat", "ana") is not None


async def test_forgetme_erases_every_trace_and_a_new_message_starts_over(
        sqlite_harness: Harness) -> None:
    h = sqlite_harness
    await h.member(PHONE, "riverside")
    await h.chat.say(PHONE, "/name zelda-river")
    replies = await h.chat.say(PHONE, "/forgetme confirm")
    assert "erased" in replies[0].text
    assert await h.app.services.members.by_handle("zelda-river") is None
    await h.app.stop()  # checkpoint the WAL so the file on disk is what we read
    data = sqlite_bytes(h.config.database.url)
    for secret in (PHONE, PHONE.capitalize(), "zelda-river"):
        assert secret.encode() not in data, secret
    h2 = await start_harness(h.config, h.clock)
    try:
        again = await h2.chat.say(PHONE, "hello")
        assert again[0].text.startswith("Hi! This is")
        member = await h2.app.services.members.find("testchat", PHONE)
        assert member.status == "pending"
    finally:
        await h2.app.stop()
        await h.app.start(background=False)  # the fixture stops it again


async def test_member_who_stopped_stays_stopped_after_forgetting(harness: Harness) -> None:
    await harness.member("ana", "riverside")
    await harness.chat.say("ana", "STOP")
    await harness.chat.say("ana", "/forgetme confirm")
    assert await harness.chat.say("ana", "hello") == []
    member = await harness.app.services.members.find("testchat", "ana")
    assert member.status == "stopped"
    # They can still come back by their own choice.
    replies = await harness.chat.say("ana", "START")
    assert "Welcome back" in replies[0].text


async def test_why_explains_the_consent_behind_messages(harness: Harness) -> None:
    await harness.member("ana", "riverside")
    text = (await harness.chat.say("ana", "/why"))[0].text
    assert "replied YES" in text and "riverside" in text and "STOP" in text


async def test_members_see_each_other_by_handle_never_by_address(harness: Harness) -> None:
    await harness.member("olga")
    await harness.member(PHONE, "riverside")
    await harness.chat.say("olga", "/groups river")
    member = await harness.app.services.members.find("testchat", PHONE)
    await harness.chat.say("olga", f"/promote {member.handle} organizer riverside")
    for sent in harness.chat.to("olga"):
        assert PHONE not in sent.text


def test_key_file_is_created_with_owner_only_permissions(tmp_path: Path) -> None:
    key_file = tmp_path / "keys" / "secret.key"
    key = load_master_key({}, "GROUNDWORK_SECRET_KEY", key_file)
    assert stat.S_IMODE(key_file.stat().st_mode) == 0o600
    assert load_master_key({}, "GROUNDWORK_SECRET_KEY", key_file) == key


def test_a_key_file_that_cannot_be_made_is_a_key_error_naming_it(tmp_path: Path) -> None:
    blocker = tmp_path / "not-a-folder"
    blocker.write_text("")  # a file where the key's folder would go
    with pytest.raises(VaultKeyError, match=re.escape(
            "not-a-folder/secret.key: cannot read or create the key file")):
        load_master_key({}, "GROUNDWORK_SECRET_KEY", blocker / "secret.key")


def test_lookup_hash_is_keyed_and_encryption_round_trips() -> None:
    a, b = Vault(b"a" * 32), Vault(b"b" * 32)
    assert a.lookup_hash("whatsapp", PHONE) == a.lookup_hash("whatsapp", PHONE)
    assert a.lookup_hash("whatsapp", PHONE) != b.lookup_hash("whatsapp", PHONE)
    token = a.encrypt(PHONE)
    assert PHONE not in token and a.decrypt(token) == PHONE
    assert a.encrypt(PHONE) != token  # a fresh nonce each time: equal numbers do not show


def test_values_written_before_aes_gcm_still_decrypt() -> None:
    vault = Vault(b"a" * 32)
    # What Fernet, the earlier format, wrote for PHONE under this key.
    old = Fernet(base64.urlsafe_b64encode(_derive(b"a" * 32, b"encrypt"))).encrypt(
        PHONE.encode()).decode()
    assert vault.decrypt(old) == PHONE


def test_a_value_under_another_key_or_altered_is_refused_not_misread() -> None:
    a, b = Vault(b"a" * 32), Vault(b"b" * 32)
    token = a.encrypt(PHONE)
    altered = token[:-6] + ("A" if token[-6] != "A" else "B") + token[-5:]
    for bad in (token, altered, "v2:short", "v2:@@not base64@@"):
        with pytest.raises(VaultKeyError):
            (b if bad == token else a).decrypt(bad)


async def test_export_member_cli_writes_everything_as_json(sqlite_harness: Harness,
                                                           tmp_path: Path) -> None:
    h = sqlite_harness
    await h.member(PHONE, "riverside")
    member = await h.app.services.members.find("testchat", PHONE)
    await h.app.stop()
    config_file = tmp_path / "config.yaml"
    config_file.write_text(
        f"database:\n  url: {h.config.database.url}\n"
        f"security:\n  key_file: {h.config.security.key_file}\n")
    out = tmp_path / "export.json"
    out.write_text("")
    out.chmod(0o644)  # there before, readable by all: the export makes it the owner's
    env = {**os.environ, "GROUNDWORK_SECRET_KEY": TEST_KEY}
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "bot", "export-member", str(member.id), "--config",
        str(config_file), "-o", str(out), env=env)
    assert await asyncio.wait_for(proc.wait(), 60) == 0
    data = json.loads(out.read_text())
    assert data["addresses"] == [{"transport": "testchat", "kind": "user", "address": PHONE}]
    assert data["groups"][0]["group"] == "riverside"
    assert data["consent_history"][0]["action"] == "granted"
    assert out.stat().st_mode & 0o777 == 0o600  # numbers in the clear: the owner's only
    # A file it cannot write: said in one line, no traceback.
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "bot", "export-member", str(member.id), "--config",
        str(config_file), "-o", str(tmp_path / "missing" / "export.json"), env=env,
        stderr=asyncio.subprocess.PIPE)
    _, err = await asyncio.wait_for(proc.communicate(), 60)
    assert proc.returncode == 1
    assert err.decode() == (f"error: cannot write {tmp_path / 'missing' / 'export.json'}: "
                            "No such file or directory\n")
    await h.app.start(background=False)


def test_make_config_helper_is_valid(tmp_path: Path) -> None:
    assert make_config("sqlite://x.sqlite3", tmp_path).admins == ("testchat:olga",)


def test_workers_starting_together_get_the_same_key(tmp_path: Path) -> None:
    from concurrent.futures import ThreadPoolExecutor

    key_file = tmp_path / "shared" / "secret.key"
    with ThreadPoolExecutor(8) as pool:
        keys = list(pool.map(lambda _: load_master_key({}, "K", key_file), range(16)))
    assert len(set(keys)) == 1
    assert stat.S_IMODE(key_file.stat().st_mode) == 0o600
    assert not [p for p in key_file.parent.iterdir() if p.name.startswith(".secret-")]
