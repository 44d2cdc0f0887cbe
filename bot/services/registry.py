"""The bundle of services a handler is given (built by the composition root)."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from bot.config import Config
from bot.services.announcements import AnnouncementService
from bot.services.consent import ConsentService
from bot.services.crypto import Vault
from bot.services.data_rights import DataRightsService
from bot.services.groups import GroupService
from bot.services.inbox import InboxService
from bot.services.members import MemberService
from bot.services.outbox import OutboxService
from bot.services.preferences import PreferenceService


@dataclass
class Services:
    config: Config
    vault: Vault
    members: MemberService
    consent: ConsentService
    inbox: InboxService
    outbox: OutboxService
    groups: GroupService
    prefs: PreferenceService
    data_rights: DataRightsService
    notice_text: str
    notice_version: str
    admin_hashes: frozenset[str]
    announcements: AnnouncementService = field(default_factory=lambda: AnnouncementService(False))
    # Moderation's review of a post before it is relayed: async (ctx, group, text) -> bool.
    # None lets everything through (until the moderation feature installs itself).
    post_gate: Any = None
    # Feature services added by later modules (events, moderation, ...), by name.
    extra: dict[str, Any] = field(default_factory=dict)

    @classmethod
    def build(cls, config: Config, vault: Vault, postgres: bool) -> Services:
        from bot.notice import notice_text, notice_version

        admins = frozenset(
            vault.lookup_hash(*entry.split(":", 1)) for entry in config.admins)
        text = notice_text(config)
        return cls(
            config=config, vault=vault, members=MemberService(vault),
            consent=ConsentService(vault),
            inbox=InboxService(vault, postgres, config.workers.inbox_lease_seconds),
            outbox=OutboxService(vault, postgres, config.workers.outbox_lease_seconds),
            groups=GroupService(config.timezone),
            prefs=PreferenceService(), data_rights=DataRightsService(vault),
            notice_text=text, notice_version=notice_version(text), admin_hashes=admins,
            announcements=AnnouncementService(postgres),
        )

    def is_admin(self, transport: str, address: str) -> bool:
        return self.vault.lookup_hash(transport, address) in self.admin_hashes
