"""Feature handlers, one module per feature; `build_router` joins their routers."""

from __future__ import annotations

from bot.routing import Router


def build_router() -> Router:
    from handlers import consent, data_rights, groups, help, profile

    router = Router()
    for module in (consent, help, data_rights, profile, groups):
        router.include(module.router)
    return router
