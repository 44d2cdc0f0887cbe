"""Who may receive what, by consent state. Pure rules; the gate applies them."""

from __future__ import annotations

import re

# Whole-message opt-out words (any case, trailing punctuation ignored).
STOP_WORDS = frozenset({"STOP", "STOPALL", "UNSUBSCRIBE", "CANCEL", "END", "QUIT", "OPTOUT",
                        "REVOKE"})

# Commands a member who has not consented (or withdrew) may still get answers to,
# because they asked themselves: rejoining, help, and their data rights.
EXEMPT_COMMANDS = frozenset({"stop", "start", "yes", "help", "mydata", "forgetme", "why"})

_TRAILING = re.compile(r"[\s.!?,;:…'\"]+$")
_OPT_OUT_SENTENCES = re.compile(
    r"^(?:please\s+)?(?:(?:stop|quit|cease)\s+(?:messaging|texting|contacting|emailing|"
    r"sending\s+(?:me\s+)?(?:messages|texts))(?:\s+me)?|"
    r"(?:do\s+not|don'?t)\s+(?:message|text|contact)\s+me(?:\s+(?:again|anymore))?|"
    r"unsubscribe\s+me|remove\s+me(?:\s+from\s+(?:this|your|the)\s+list)?|"
    r"(?:i\s+want\s+to\s+)?opt\s*-?\s*out)"
    r"(?:\s+please)?$",
    re.IGNORECASE,
)


def keyword(text: str) -> str:
    """The message as a bare keyword: upper case, trailing punctuation dropped."""
    return _TRAILING.sub("", text.strip()).upper()


def is_opt_out(text: str) -> bool:
    """STOP and its synonyms as the whole message, or a clear sentence asking us to stop."""
    word = keyword(text)
    if word in STOP_WORDS:
        return True
    sentence = " ".join(_TRAILING.sub("", text.strip()).split())
    return bool(_OPT_OUT_SENTENCES.match(sentence))


def may_receive(status: str, kind: str, command: str | None) -> bool:
    """Consent rule for one outgoing message to a person."""
    if status == "active":
        return True
    if status == "pending" and kind == "notice":
        return True
    return kind in {"reply", "notice"} and command in EXEMPT_COMMANDS
