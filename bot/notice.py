"""The consent notice: the one message anyone gets before they say YES."""

from __future__ import annotations

import hashlib

from bot.config import Config


def notice_text(config: Config) -> str:
    org = config.organization
    cap = config.messaging.max_group_messages_per_day
    return (
        f"Hi! This is {org.name}'s organizing bot.\n"
        f"If you join, you'll get news, events and reminders from the local groups you choose "
        f"— at most {cap} group messages a day, never during quiet hours "
        f"({config.messaging.quiet_hours}).\n"
        "Reply YES to join. Reply STOP at any time to stop all messages.\n"
        f"Who we are: {org.name}, {org.contact}. Privacy: {org.privacy_url}\n"
        "Until you reply YES we keep only your chat id, and send you nothing else."
    )


def notice_version(text: str) -> str:
    """A short hash of the exact notice shown, recorded in the consent ledger."""
    return hashlib.sha256(text.encode()).hexdigest()[:12]
