"""Text normalization for moderation: fold look-alikes, tokenize, undo evasions.

Everything here is pure and linear in the length of the text. The same
functions are applied to blocklist entries and to posts, so both sides of a
comparison always live in the same normalized space.

Layers, from cheap to specific:

* `fold` — case, compatibility forms (full-width, ligatures, math letters),
  diacritics, invisible format characters, Cyrillic/Greek/small-capital
  look-alikes. Digits and spacing are kept, so links, phone numbers and
  moderator regular expressions still see them.
* `tokenize` — word tokens of folded text; leetspeak symbols (@ $ ! | *)
  stay inside tokens so "a$$" remains one token.
* `deleet` — per token, digits and symbols back to letters ("h3ll0" -> "hello"),
  except for plain numbers ("2026" stays "2026").
* `squeeze` / `run_lengths` — repeated letters ("idiooot") collapse to one key;
  the run lengths are kept so "as" never counts as "ass".
* `spaced_runs` — the separate evasion pass that glues runs of single
  characters ("i d i o t", "i.d.i.o.t") back together.
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Callable, Iterator

__all__ = [
    "deleet",
    "deleet_variants",
    "fold",
    "run_lengths",
    "spaced_runs",
    "squeeze",
    "strip_invisible",
    "tokenize",
]

# Look-alikes that NFKD leaves alone, applied after casefolding (so only the
# lower-case forms are needed). Targets are ASCII, so folding stays idempotent.
_HOMOGLYPHS: dict[str, str] = {
    # Cyrillic
    "а": "a", "в": "b", "е": "e", "ѐ": "e", "ё": "e", "и": "u", "к": "k",
    "м": "m", "н": "h", "о": "o", "п": "n", "р": "p", "с": "c", "т": "t", "у": "y",
    "х": "x", "ъ": "b", "ь": "b", "ѕ": "s", "і": "i", "ї": "i", "ј": "j", "ԁ": "d",
    "һ": "h", "ӏ": "l", "ԛ": "q", "ԝ": "w", "ɡ": "g", "ѵ": "v", "ү": "y", "ҫ": "c",
    # Greek
    "α": "a", "β": "b", "γ": "y", "ε": "e", "ζ": "z", "η": "n", "ι": "i", "κ": "k",
    "μ": "u", "ν": "v", "ο": "o", "ρ": "p", "τ": "t", "υ": "u", "χ": "x", "ω": "w",
    "ϲ": "c", "ϳ": "j",
    # Armenian / Latin extensions / small capitals used to dodge filters
    "օ": "o", "ս": "u", "ı": "i", "ɑ": "a", "ɩ": "i", "ʟ": "l", "ᴀ": "a", "ʙ": "b",
    "ᴄ": "c", "ᴅ": "d", "ᴇ": "e", "ɢ": "g", "ʜ": "h", "ɪ": "i", "ᴊ": "j", "ᴋ": "k",
    "ᴍ": "m", "ɴ": "n", "ᴏ": "o", "ᴘ": "p", "ʀ": "r", "ꜱ": "s", "ᴛ": "t", "ᴜ": "u",
    "ᴠ": "v", "ᴡ": "w", "ʏ": "y", "ᴢ": "z",
}  # fmt: skip

# Characters dropped entirely: combining marks (accents after NFKD) and
# invisible format characters (zero-width space/joiners, soft hyphen, bidi
# marks) that are used to split a word without it looking split.
_DROP_CATEGORIES = frozenset({"Mn", "Me", "Cf"})
# Cache bound so a flood of exotic code points cannot grow memory without end.
_FOLD_CACHE_LIMIT = 65_536


class _LazyTable(dict[int, int | None]):
    """`str.translate` table computed lazily per code point and cached.

    Cache hits are resolved by dict lookup in C, so translating ordinary
    text costs about as much as a plain `str.translate`.
    """

    def __init__(self, decide: Callable[[str], str | None]) -> None:
        super().__init__()
        self._decide = decide

    def __missing__(self, cp: int) -> int | None:
        target = self._decide(chr(cp))
        value = None if target is None else ord(target)
        if len(self) < _FOLD_CACHE_LIMIT:
            self[cp] = value
        return value


def _fold_char(ch: str) -> str | None:
    if unicodedata.category(ch) in _DROP_CATEGORIES:
        return None
    return _HOMOGLYPHS.get(ch, ch)


def _visible_char(ch: str) -> str | None:
    return None if unicodedata.category(ch) == "Cf" else ch


_FOLD_TABLE = _LazyTable(_fold_char)
_INVISIBLE_TABLE = _LazyTable(_visible_char)


def strip_invisible(text: str) -> str:
    """`text` without zero-width, bidi and other invisible format characters."""
    return text if text.isascii() else text.translate(_INVISIBLE_TABLE)


def _fold_once(text: str) -> str:
    # NFKD splits accents off and maps compatibility forms (full-width "ｉ",
    # "ﬁ", "𝐢") to plain letters; casefold handles "ß" -> "ss" and friends;
    # NFKD again because casefolding can produce decomposable characters.
    text = unicodedata.normalize("NFKD", text).casefold()
    text = unicodedata.normalize("NFKD", text)
    return text.translate(_FOLD_TABLE)


def fold(text: str) -> str:
    """Case-, accent- and look-alike-insensitive form of `text`. Idempotent."""
    if text.isascii():
        # The overwhelmingly common case: nothing to decompose or map.
        return text.lower()
    # A few rare characters only settle after a second round (a mapping can
    # expose a new decomposition); bounded so pathological input stays linear.
    for _ in range(3):
        folded = _fold_once(text)
        if folded == text:
            break
        text = folded
    return text


# A token is a run of letters/digits, with leetspeak symbols allowed inside.
_TOKEN_RE = re.compile(r"(?:[^\W_]|[@$!|*])+")
_ASCII_TOKEN_RE = re.compile(r"[a-zA-Z0-9@$!|*]+")  # same on ASCII text, twice as fast
# Punctuation at the edges ("idiot!", "*bold*"); a leading "!" stays, as in
# "!d!ot", where it can only be a letter.
_LEADING_PUNCT = "|*"
_TRAILING_PUNCT = "!|*"
_SYMBOLS = frozenset("@$!|*")


def tokenize(folded: str) -> list[str]:
    """Word tokens of already folded text (see `fold`)."""
    pattern = _ASCII_TOKEN_RE if folded.isascii() else _TOKEN_RE
    tokens = pattern.findall(folded)
    if not _SYMBOLS.intersection(folded):
        return tokens
    out = []
    for tok in tokens:
        tok = tok.lstrip(_LEADING_PUNCT).rstrip(_TRAILING_PUNCT)
        if tok:
            out.append(tok)
    return out


# Primary reading of each leet character; `|` and `1` are ambiguous between
# "i" and "l", so `deleet_variants` also tries the other reading.
_LEET = str.maketrans({"0": "o", "1": "i", "3": "e", "4": "a", "5": "s", "7": "t",
                       "@": "a", "$": "s", "!": "i", "|": "l"})  # fmt: skip
_LEET_ALT = str.maketrans({"0": "o", "1": "l", "3": "e", "4": "a", "5": "s", "7": "t",
                           "@": "a", "$": "s", "!": "i", "|": "i"})  # fmt: skip
_AMBIGUOUS = frozenset("1|")
# Plain numbers, money and decimals are not leetspeak: "2026", "$1500", "3.5".
_NUMBER_RE = re.compile(r"\$?\d+")


def deleet(token: str) -> str:
    """Leetspeak token back to letters; plain numbers are left alone."""
    if token.isalpha() or _NUMBER_RE.fullmatch(token):
        return token
    return token.translate(_LEET)


def deleet_variants(token: str) -> tuple[str, ...]:
    """All readings of a token worth checking (one, or two for 1/| ambiguity)."""
    if token.isalpha() or _NUMBER_RE.fullmatch(token):
        return (token,)
    primary = token.translate(_LEET)
    if not _AMBIGUOUS.intersection(token):
        return (primary,)
    return (primary, token.translate(_LEET_ALT))


_REPEAT_RE = re.compile(r"(.)\1+", re.DOTALL)
_RUN_RE = re.compile(r"(.)\1*", re.DOTALL)


def _first_of_run(m: re.Match[str]) -> str:
    return m.group(1)


def squeeze(text: str) -> str:
    """Collapse repeated characters: "idiooot" -> "idiot"."""
    # A function replacement is faster than the template r"\1", which CPython
    # expands in Python code for every match.
    return _REPEAT_RE.sub(_first_of_run, text)


def run_lengths(text: str) -> tuple[int, ...]:
    """Length of each run of equal characters: "ass" -> (1, 2)."""
    return tuple(len(m.group()) for m in _RUN_RE.finditer(text))


# One character (letter, digit or leet symbol) standing alone, then more of
# them, each separated by 1-3 spaces or punctuation marks: "i d i o t",
# "i.d.i.o.t", "i - d - i - o - t". Whole words ("class") can never match.
_SINGLE = r"(?:[^\W_]|[@$])"
_GAP = r"(?:[^\w@$]|_){1,3}"
_SPACED_RE = re.compile(rf"(?<![\w@$]){_SINGLE}(?:{_GAP}{_SINGLE})+(?![\w@$])")
_NOT_SINGLE_RE = re.compile(r"[^\w@$]|_")


def spaced_runs(folded: str) -> Iterator[list[str]]:
    """Runs of single characters in folded text, each as its list of characters."""
    for m in _SPACED_RE.finditer(folded):
        yield [c for c in _NOT_SINGLE_RE.split(m.group()) if c]
