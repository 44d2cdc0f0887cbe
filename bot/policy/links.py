"""Finding links in a post and deciding whether their hosts are allowed.

Links are found with a scheme ("https://…", "tg://…"), with "www.", or bare
("example.org/x", "пример.рф"). A bare candidate only counts when its last
label is a known top-level domain, which is what keeps "e.g.", "3.5",
"Mr.Smith" and "file.txt" from looking like links.

Hosts are compared in their ASCII (punycode) form and look-alike characters
are deliberately NOT folded here: "exаmple.org" with a Cyrillic "а" is a
different domain from "example.org" and must not borrow its permission.
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Iterable, Iterator
from urllib.parse import urlsplit

import phonenumbers

from bot.policy import textnorm

__all__ = ["ascii_host", "find_hosts", "host_allowed"]

# Country-code TLDs: every ISO region phonenumbers knows, plus a few extras.
_CC_TLDS = frozenset(r.lower() for r in phonenumbers.SUPPORTED_REGIONS) | {
    "uk", "eu", "su", "ac", "io", "tp",
}  # fmt: skip
_GENERIC_TLDS = frozenset(
    """
    com net org edu gov mil int info biz name pro mobi app dev ai xyz online site
    website store shop blog news page club live social media chat link click cloud
    tech digital email network community foundation ngo ong vote voto church
    global world today wiki art studio design solutions services agency zone top
    icu one fun space press events center earth green eco coop museum jobs travel
""".split()
)
# ccTLDs that are also everyday words ("ok.so", "done.it"): a bare two-label
# candidate with one of these only counts with a path or a known short host.
_WORDY_TLDS = frozenset(
    "am an as at be by do er go he hi id if im in is it la ma me my no of on or pe so "
    "to tv uk up us we".split()
)
_KNOWN_SHORT_HOSTS = frozenset(
    {"t.me", "wa.me", "youtu.be", "fb.me", "m.me", "on.fb.me", "g.co", "amzn.to", "ow.ly"}
)

_TRAILING_PUNCT = ".,;:!?)]}>'\"…»”’"
_URL_RE = re.compile(
    r"""
      (?P<scheme>(?<![\w.+-])[a-z][a-z0-9+.-]{0,15}://[^\s<>"'`]+)
    | (?P<www>(?<![\w@.-])www\d{0,3}\.[^\s<>"'`]+)
    | (?P<bare>(?<![\w@.-])
          (?:[^\W_](?:[\w-]{0,61}[^\W_])?\.)+        # labels
          (?P<tld>[^\W\d_]{2,63}|xn--[a-z0-9-]{1,59})  # top-level domain
          (?![\w-]|\.[^\W_])                           # not the middle of a name
          (?P<rest>(?::\d{1,5})?/[^\s<>"'`]*)?)
    """,
    re.IGNORECASE | re.VERBOSE,
)
# Characters that browsers and IDNA treat as a dot; NFKC handles "．" and "｡".
_DOT_LETTER_RE = re.compile(r"\.[^\W\d_]")
_IDEOGRAPHIC_DOTS = str.maketrans({"\u3002": ".", "\uff0e": ".", "\uff61": "."})


def _link_view(text: str) -> str:
    """NFKC text without invisible characters; look-alikes kept (see module doc)."""
    if text.isascii():
        return text
    text = unicodedata.normalize("NFKC", text).translate(_IDEOGRAPHIC_DOTS)
    return textnorm.strip_invisible(text)


def _tld_known(tld: str) -> bool:
    tld = tld.lower()
    if tld.startswith("xn--") or not tld.isascii():
        return True  # internationalized TLDs ("рф", "中国") are all real ones in practice
    return tld in _CC_TLDS or tld in _GENERIC_TLDS


def _bare_host(m: re.Match[str]) -> str | None:
    host = m.group("bare")
    if m.group("rest"):
        host = host[: len(host) - len(m.group("rest"))]
    tld = m.group("tld")
    if not _tld_known(tld):
        return None
    labels = host.split(".")
    if (
        tld.lower() in _WORDY_TLDS
        and len(labels) == 2
        and not m.group("rest")
        and host.lower() not in _KNOWN_SHORT_HOSTS
    ):
        return None
    return host


def _scheme_host(url: str) -> str:
    try:
        return urlsplit(url).hostname or ""
    except ValueError:  # bad port or bracketed IPv6: still a link, with no usable host
        return ""


def find_hosts(text: str) -> Iterator[str]:
    """Host of every link in `text` (lower case; "" when a link has no usable host)."""
    view = _link_view(text)
    # Every link has a scheme, "www" or a dot followed by a letter; ordinary
    # sentences ("Thanks. See you") have none, and skip the big regex.
    if "://" not in view and "www" not in view and not _DOT_LETTER_RE.search(view):
        return
    for m in _URL_RE.finditer(view):
        if m.group("scheme"):
            yield _scheme_host(m.group("scheme").rstrip(_TRAILING_PUNCT))
        elif m.group("www"):
            yield _scheme_host("http://" + m.group("www").rstrip(_TRAILING_PUNCT))
        else:
            host = _bare_host(m)
            if host is not None:
                yield host.lower()


def ascii_host(host: str) -> str | None:
    """Punycode (IDNA) form of a host name, lower case; None if it is not valid."""
    host = host.strip().rstrip(".").lower()
    if not host:
        return None
    if host.isascii():
        return host
    try:
        return host.encode("idna").decode("ascii").lower()
    except UnicodeError:
        return None


def host_allowed(host: str, allowed: Iterable[str]) -> bool:
    """True when `host` is one of `allowed` (ASCII forms) or a subdomain of one."""
    ascii_form = ascii_host(host)
    if ascii_form is None:
        return False
    return any(ascii_form == d or ascii_form.endswith("." + d) for d in allowed)
