"""The webhook server's middleware: a request id per HTTP request, and one access line.

The id is the caller's `X-Request-Id` when it is sane (a proxy or Meta's retries can then
be matched with our lines), else a fresh one; it is echoed in the response and carried by
every line logged while the request is handled. The access line names the method, the
path without its query string (Meta's handshake puts the verify token there), the status
and the time taken. Probes (/healthz, /readyz, /metrics) log at DEBUG, so a load
balancer's polling does not bury the rest, and so do accepted webhooks (see _level).
"""

from __future__ import annotations

import logging
import time
from collections.abc import Awaitable, Callable

from aiohttp import web

from bot.logs import REQUEST_ID_HEADER, new_request_id, request_context, sane_request_id

log = logging.getLogger("groundwork.http")

QUIET_PATHS = frozenset({"/healthz", "/readyz", "/metrics"})
MAX_LOGGED_PATH = 200  # a scanner's 10 kB path is not worth a 10 kB log line

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


@web.middleware
async def request_ids(request: web.Request, handler: Handler) -> web.StreamResponse:
    rid = sane_request_id(request.headers.get(REQUEST_ID_HEADER)) or new_request_id()
    started = time.perf_counter()
    status = 499  # stays so if the caller goes away mid-request (nginx's "client closed")
    with request_context(rid):
        try:
            response = await handler(request)
            status = response.status
        except web.HTTPException as exc:  # 401, 404, 413...: aiohttp's answers, raised
            status = exc.status
            exc.headers[REQUEST_ID_HEADER] = rid
            raise
        except Exception:
            # Answered here, not by aiohttp, so the traceback is logged with the request
            # id and the caller gets one plain line.
            log.exception("unhandled error in %s %s", request.method, _path(request))
            status = 500
            response = web.Response(status=500, text="internal error\n")
        finally:
            _access(request, status, started)
    if not response.prepared:  # a streamed response has sent its headers already
        response.headers[REQUEST_ID_HEADER] = rid
    return response


def _path(request: web.Request) -> str:
    # raw_path keeps percent-escapes: a decoded %0A would forge a line in text logs.
    return request.raw_path.split("?", 1)[0][:MAX_LOGGED_PATH]


def _level(method: str, path: str, status: int) -> int:
    if path in QUIET_PATHS:
        return logging.DEBUG  # even a 503 from /readyz: that is what starting looks like
    if status >= 500:
        return logging.WARNING
    if method == "POST" and status < 300:
        # An accepted webhook (the server takes no other POST): every message and every
        # delivery report, two or three per message sent, all counted and timed in
        # /metrics. A line each was the bulk of the log at info (at WhatsApp's top tier,
        # 86 million lines a day) and an eighth of the CPU of acknowledging. Refused
        # webhooks, the verification handshake and anything else stay at info.
        return logging.DEBUG
    return logging.INFO


def _access(request: web.Request, status: int, started: float) -> None:
    path = _path(request)
    level = _level(request.method, path, status)
    if not log.isEnabledFor(level):
        return
    ms = round((time.perf_counter() - started) * 1000, 2)
    log.log(level, "%s %s %d %.2f ms", request.method, path, status, ms,
            extra={"method": request.method, "path": path, "status": status, "ms": ms})
