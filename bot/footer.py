"""The transparency footer every message sent on a group's behalf carries."""

from __future__ import annotations


def footer(group_name: str, group_code: str, sender_role: str, reason: str) -> str:
    """Who sent it, why you got it, and how to hear less or stop."""
    return (f"— {group_name} · sent by {sender_role} · {reason}.\n"
            f"Less: /quiet, /digest daily, /leave {group_code}. Stop everything: STOP")
