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
    """Events, RSVPs, reminders and calendars: the service, the reminder job, data rights."""
    from bot.services.events import EventService
    from bot.services.reminders import ReminderService

    s = app.services
    reminders = ReminderService(s.outbox, app.config.messaging.reminder_hours_before)

    def takes_files(transport: str) -> bool:
        # Looked up when asked: the test chat CLI adds its transport after the app is built.
        found = app.transports.get(transport)
        return found is not None and found.capabilities.files

    events = EventService(s.vault, s.outbox, reminders, app.config.organization.name,
                          takes_files)
    s.extra["events"] = events
    app.jobs.append(reminders.send_due)
    s.data_rights.add_section("rsvps", events.export_member)
    s.data_rights.add_eraser(lambda member_id: events.erase_member(member_id, app.clock.now()))


def _announcements(app: App) -> None:
    """Announcements and relays need no wiring beyond their handlers; digests run daily."""
    from bot.services.digests import DigestService

    config = app.config
    digests = DigestService(config.messaging, config.timezone, config.organization.name)
    app.services.extra["digests"] = digests
    app.jobs.append(digests.send_due)


def _moderation(app: App) -> None:
    """Moderation rules, reports, appeals and the audit log."""
