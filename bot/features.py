"""Feature wiring, called once by the composition root (`bot.app.App`).

One small function per feature keeps `bot/app.py` from growing with every feature.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from bot.app import App


def install(app: App) -> None:
    for setup in (_events, _announcements, _moderation):
        setup(app)


def _events(app: App) -> None:
    """Events, RSVPs and reminders (filled in by the events feature)."""


def _announcements(app: App) -> None:
    """Announcements and relays need no wiring beyond their handlers; digests run daily."""
    from bot.services.digests import DigestService

    config = app.config
    digests = DigestService(config.messaging, config.timezone, config.organization.name)
    app.services.extra["digests"] = digests
    app.jobs.append(digests.send_due)


def _moderation(app: App) -> None:
    """Moderation rules, reports, appeals and the audit log."""
