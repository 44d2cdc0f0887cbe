"""Feature wiring, called once by the composition root (`bot.app.App`).

One small function per feature keeps `bot/app.py` from growing with every feature.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from bot.app import App


def install(app: App) -> None:
    for setup in (_events, _announcements, _moderation, _discussions, _team_groups):
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
    s.groups.on_leave.append(events.withdraw_from_group)
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
    """Moderation rules, reports, appeals and the audit log: the services, the post gate,
    the room hook, the housekeeping job (ends bans, purges the audit log) and data rights."""
    from bot.services.audit import AuditService
    from bot.services.ban_carryover import BanCarryover
    from bot.services.moderation import ModerationService, check_settings
    from bot.services.reports import ReportService
    from bot.services.room_joins import RoomJoins
    from handlers.moderation import post_gate, room_hook

    config = app.config
    region = config.transports.whatsapp.default_region
    check_settings(config.moderation, region, config.path)  # a bad rule stops the start

    def can(transport: str, capability: str) -> bool:
        # Looked up when asked: the test chat CLI adds its transport after the app is built.
        found = app.transports.get(transport)
        return found is not None and bool(getattr(found.capabilities, capability, False))

    s = app.services
    audit = AuditService(config.moderation.audit_retention_days)
    moderation = ModerationService(
        outbox=s.outbox, members=s.members, audit=audit, settings=config.moderation,
        default_region=region, timezone=config.timezone, admins=config.admins, can=can)
    reports = ReportService(s.vault, moderation)
    s.extra["moderation"] = moderation  # is_banned() for WhatsApp team-group join requests
    s.extra["reports"] = reports
    s.post_gate = post_gate
    app.processor.room_hooks.append(room_hook)
    app.processor.join_hooks.append(RoomJoins(moderation, audit).on_join_request)
    app.jobs.append(moderation.housekeeping)
    s.data_rights.add_section("moderation_actions", audit.export_member)
    s.data_rights.add_section("reports_and_appeals", reports.export_member)
    s.data_rights.add_section("recent_posts_counted_by_the_flood_rule",
                              moderation.export_flood_marks)
    s.data_rights.add_eraser(audit.erase_member)
    s.data_rights.add_eraser(reports.erase_member)
    # A ban must survive the banned member's /forgetme (bot/services/ban_carryover.py).
    carryover = BanCarryover(moderation)
    s.data_rights.add_eraser(lambda member_id: carryover.keep(member_id, app.clock.now()))
    s.members.on_created.append(carryover.reinstate)
    app.jobs.append(carryover.purge)


def _discussions(app: App) -> None:
    """Issue discussions and polls: their services and their data-rights sections."""
    from bot.services.discussions import DiscussionService
    from bot.services.polls import PollService

    def takes_buttons(transport: str) -> bool:
        # Looked up when asked: the test chat CLI adds its transport after the app is built.
        found = app.transports.get(transport)
        return found is not None and found.capabilities.buttons

    s = app.services
    discussions = DiscussionService()
    polls = PollService(discussions, takes_buttons)
    s.extra["discussions"] = discussions
    s.extra["polls"] = polls
    s.data_rights.add_section("comments", discussions.export_comments)
    s.data_rights.add_section("votes", polls.export_member)
    s.data_rights.add_section("issues", discussions.export_issues)
    s.data_rights.add_eraser(polls.erase_member)
    s.data_rights.add_eraser(discussions.erase_member)


def _team_groups(app: App) -> None:
    """WhatsApp groups for core teams: only where the WhatsApp transport is enabled."""
    whatsapp = app.transports.get("whatsapp")
    if whatsapp is None:
        return  # the commands then answer that team groups need WhatsApp
    from bot.services.team_groups import ACTIONS as TEAM_ACTIONS
    from bot.services.team_groups import TeamGroupService
    from bot.transports.whatsapp import (
        GROUP_PARTICIPANT_CAP,
        WhatsAppGroupError,
        WhatsAppGroupPending,
    )

    s = app.services
    moderation = s.extra.get("moderation")
    teams = TeamGroupService(whatsapp, s.members, s.outbox,  # type: ignore[arg-type]
                             pending_error=WhatsAppGroupPending, api_error=WhatsAppGroupError,
                             cap=GROUP_PARTICIPANT_CAP, moderation=moderation)
    s.extra["team_groups"] = teams
    app.processor.join_hooks.append(teams.on_join_request)
    app.processor.group_hooks.append(teams.on_group_update)
    # Groups API calls are made after commit, by the delivery worker (team_groups.py).
    for action in TEAM_ACTIONS:
        app.delivery.room_performers[action] = teams.perform
    if moderation is not None:
        moderation.removal_hooks.append(teams.on_removed)
