"""Feature handlers, one module per feature; `build_router` joins their routers."""

from __future__ import annotations

from bot.routing import Router


def build_router() -> Router:
    from handlers import (
        announce,
        consent,
        data_rights,
        discussions,
        events,
        groups,
        help,
        moderation,
        polls,
        profile,
        reports,
        settings,
        wa_groups,
    )

    router = Router()
    for module in (consent, help, data_rights, profile, groups, announce, settings, events,
                   discussions, polls, moderation, reports, wa_groups):
        router.include(module.router)
    return router
