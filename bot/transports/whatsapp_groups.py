"""WhatsApp Groups API: small business-created core teams.

Per Meta's Groups API reference: groups are created by the business, people
join only through the invite link (optionally approved via join requests), and
a group holds at most 8 participants besides the business. That suits a core
team; local groups are rooms the bot relays instead (DESIGN.md).

The transport mixes this in and supplies `_graph_call`.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence
from typing import Any
from urllib.parse import quote

import aiohttp

from bot.transports.whatsapp_parse import graph_error

GROUP_PARTICIPANT_CAP = 8
_SUBJECT_MAX = 128
_DESCRIPTION_MAX = 2048
# "US.13491208655302741918", parent ids "US.ENT.1181...": country, period, alphanumerics.
_BSUID = re.compile(r"[A-Z]{2}\.(?:ENT\.)?[A-Za-z0-9]+")


# Graph codes that mean "slow down": app, account and throughput limits.
_RATE_LIMITS = frozenset({4, 80007, 130429})


class WhatsAppGroupError(Exception):
    """A Groups API call failed; the message is Graph's own explanation.

    `transient`: the network failed, Graph had trouble (5xx) or asked us to slow down,
    so the same call may succeed later. Whether it reached Meta is then unknown.
    """

    def __init__(self, message: str, code: int | None = None,
                 succeeded: Sequence[str] = (), *, transient: bool = False) -> None:
        super().__init__(message)
        self.code = code
        self.succeeded = tuple(succeeded)  # ids handled before a partial failure
        self.transient = transient


class WhatsAppGroupPending(WhatsAppGroupError):
    """Meta accepted the create but answered with a request id only.

    The reference shows no synchronous response for group creation; the group id
    and invite link arrive in a `group_lifecycle_update` webhook carrying this
    request id.
    """

    def __init__(self, request_id: str) -> None:
        super().__init__(f"group creation pending (request_id={request_id})")
        self.request_id = request_id


def is_bsuid(user: str) -> bool:
    return _BSUID.fullmatch(user) is not None


class WhatsAppGroupsMixin:
    phone_number_id: str

    async def _graph_call(self, method: str, path: str,
                          body: dict[str, Any] | None) -> tuple[int, Any]:
        """(HTTP status, decoded JSON or None) for one Graph API call."""
        raise NotImplementedError

    async def create_group(self, subject: str, description: str = "", *,
                           require_approval: bool = True) -> str:
        """Create a group and return its id.

        Join approval is on by default: a core team should vet who comes in
        through a forwarded invite link.
        """
        if not subject.strip() or len(subject) > _SUBJECT_MAX:
            raise ValueError(f"group subject must be 1..{_SUBJECT_MAX} characters")
        if len(description) > _DESCRIPTION_MAX:
            raise ValueError(f"group description must be at most {_DESCRIPTION_MAX} characters")
        body: dict[str, Any] = {
            "messaging_product": "whatsapp",
            "subject": subject,
            "join_approval_mode": "approval_required" if require_approval else "auto_approve",
        }
        if description:
            body["description"] = description
        data = await self._group_call("POST", f"{quote(self.phone_number_id, safe='')}/groups",
                                      body)
        group_id = data.get("id") or data.get("group_id")
        if isinstance(group_id, str) and group_id:
            return group_id
        request_id = data.get("request_id")
        if isinstance(request_id, str) and request_id:
            raise WhatsAppGroupPending(request_id)
        raise WhatsAppGroupError("group created but Graph returned no group id")

    async def get_invite_link(self, group_id: str) -> str:
        data = await self._group_call("GET", f"{_seg(group_id)}/invite_link", None)
        return _invite_link(data)

    async def reset_invite_link(self, group_id: str) -> str:
        """A new link; every earlier link stops working."""
        data = await self._group_call("POST", f"{_seg(group_id)}/invite_link",
                                      {"messaging_product": "whatsapp"})
        return _invite_link(data)

    async def approve_join_requests(self, group_id: str,
                                    join_request_ids: Iterable[str]) -> list[str]:
        """Approve by join request id (from the webhook or GET join_requests)."""
        return await self._join_requests("POST", group_id, join_request_ids,
                                         "approved_join_requests")

    async def reject_join_requests(self, group_id: str,
                                   join_request_ids: Iterable[str]) -> list[str]:
        return await self._join_requests("DELETE", group_id, join_request_ids,
                                         "rejected_join_requests")

    async def remove_participants(self, group_id: str, user_ids: Iterable[str]) -> None:
        """Remove by phone number / wa_id or BSUID. Removed people cannot rejoin by link."""
        users = list(user_ids)
        if not users or len(users) > GROUP_PARTICIPANT_CAP:
            raise ValueError(f"remove 1..{GROUP_PARTICIPANT_CAP} participants per call")
        participants = [{"user_id": u} if is_bsuid(u) else {"user": u} for u in users]
        await self._group_call("DELETE", f"{_seg(group_id)}/participants",
                               {"messaging_product": "whatsapp", "participants": participants})

    async def _join_requests(self, method: str, group_id: str, ids: Iterable[str],
                             done_key: str) -> list[str]:
        requested = list(ids)
        if not requested:
            return []
        data = await self._group_call(method, f"{_seg(group_id)}/join_requests",
                                      {"messaging_product": "whatsapp",
                                       "join_requests": requested})
        done = [i for i in data.get(done_key) or [] if isinstance(i, str)]
        failed = data.get("failed_join_requests") or data.get("errors")
        if failed:
            raise WhatsAppGroupError(f"some join requests failed: {failed!r}", succeeded=done)
        return done

    async def _group_call(self, method: str, path: str,
                          body: dict[str, Any] | None) -> dict[str, Any]:
        try:
            status, data = await self._graph_call(method, path, body)
        except (aiohttp.ClientError, TimeoutError) as exc:
            raise WhatsAppGroupError(f"Graph API unreachable: {exc!r}",
                                     transient=True) from exc
        if not 200 <= status < 300:
            code, text = graph_error(data)
            transient = status >= 500 or status == 429 or code in _RATE_LIMITS
            raise WhatsAppGroupError(text or f"Graph API answered HTTP {status}", code,
                                     transient=transient)
        return data if isinstance(data, dict) else {}


def _seg(group_id: str) -> str:
    """A group id as one path segment: ids come from webhooks, so never trust them as paths."""
    if not group_id:
        raise ValueError("group id is empty")
    return quote(group_id, safe="")


def _invite_link(data: dict[str, Any]) -> str:
    link = data.get("invite_link")
    if not isinstance(link, str) or not link:
        raise WhatsAppGroupError("Graph returned no invite link")
    return link
