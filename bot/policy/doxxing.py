"""Doxxing guard: phone numbers and street addresses in a post.

Both detectors run on folded text (`textnorm.fold`): full-width digits become
ASCII, "Straße" becomes "strasse", case is gone.

Phones: libphonenumber's matcher finds numbers that are valid for the group's
region or written internationally ("+31 6 …"); a few shape rules catch what
it leaves out on purpose, such as made-up or obfuscated numbers
("555 123 4567", "(555) 123-4567", "5 5 5 1 2 3 4 5 6 7").

Addresses: a heuristic, not a geocoder. It looks for a house number next to
a street word in the order each language writes it:

* "123 Main Street", "12b N. Oak Ave"   (number, name, suffix)
* "45 Rue de la Paix", "10 avenue Foch"  (number, street word, name)
* "Calle Mayor 12", "Via Roma 10"        (street word, name, number)
* "Hauptstraße 5", "Keizersgracht 123"   (compound street name, number)

Times ("7:30"), dates ("2026-11-28"), years ("in 2026 Main Street…"), money
("$1500"), counts ("25 volunteers") and ids ("#4821") are excluded by what
may stand around the number and by a stop-list of words that never appear
inside a street name.
"""

from __future__ import annotations

import re
from collections.abc import Collection

import phonenumbers
from phonenumbers import Leniency, PhoneNumberMatcher

__all__ = ["contains_address", "contains_phone", "region_supported"]

# -- phones -------------------------------------------------------------------

# Seven digits close together: without them there is no phone number, and
# this one C-speed search is all that most posts ever cost.
_SEVEN_DIGITS_RE = re.compile(r"\d(?:[ \t().\-/]{0,3}\d){6}")
# A stretch of digits and the separators phone numbers are written with.
# Only stretches with at least 7 digits are examined, and the (slow,
# pure-Python) matcher only ever sees such a stretch plus a little context,
# which keeps it off nearly every post and bounds its cost on huge ones.
_CANDIDATE_RE = re.compile(r"[+(]?\d[\d \t().\-/]*\d\)?")
_MIN_PHONE_DIGITS = 7
# Enough context for the matcher to see a leading "#", "$" or a letter, or the
# ":00" that turns "2026-11-28 18" into a timestamp.
_CONTEXT = 4
# Longer stretches are digit soup (tables, ids): only the shape rules see them.
_MAX_CANDIDATE = 48
# Calendar dates ("28.11.2026", "2026-11-28", "11/28/26") are blanked out before
# looking for phones: in many regions their digits also form a valid number.
# A date followed by yet another group ("06.12.34.56.78") is a phone, not a date.
_DATE_RE = re.compile(
    r"(?<![\d./-])(?:\d{1,2}[./-]\d{1,2}[./-](?:\d{4}|\d{2})|\d{4}[./-]\d{1,2}[./-]\d{1,2})"
    r"(?![\d]|[./-]\d)"
)
_SEP = r"[ \t.\-]"
_PHONE_SHAPES_RE = re.compile(
    rf"""
    (?<![\w$€£¥#/:.+-])
    (?:
        # North American shape, with separators or parentheses (bare runs of ten
        # digits are left to the region-aware matcher: they are often ids).
        (?:\+?1{_SEP}*)?(?:\(\d{{3}}\){_SEP}*|\d{{3}}{_SEP}+)\d{{3}}{_SEP}+\d{{4}}
      | # international prefix followed by at least 7 more digits in groups
        \+\d{{1,3}}(?:{_SEP}*\(?\d{{1,5}}\)?){{2,6}}
      | # digits spaced out one by one
        \d(?:{_SEP}{{1,3}}\d){{8,14}}
    )
    (?![\w:/]|[.,]\d)
    """,
    re.VERBOSE,
)
_MIN_INTERNATIONAL_DIGITS = 8
_MAX_PHONE_DIGITS = 15  # E.164


def region_supported(region: str) -> bool:
    return region.upper() in phonenumbers.SUPPORTED_REGIONS


def contains_phone(folded: str, region: str | None) -> bool:
    """True if folded text holds something that reads as a phone number."""
    if not _SEVEN_DIGITS_RE.search(folded):
        return False
    if _DATE_RE.search(folded):
        folded = _DATE_RE.sub(lambda m: "x" * len(m.group()), folded)
    for m in _CANDIDATE_RE.finditer(folded):
        if _digit_count(m.group()) < _MIN_PHONE_DIGITS:
            continue
        start, end = m.span()
        if _shape_finds(folded, start, end):
            return True
        if end - start <= _MAX_CANDIDATE:
            window = folded[max(0, start - _CONTEXT) : end + _CONTEXT]
            if _matcher_finds(window, region):
                return True
    return False


def _matcher_finds(text: str, region: str | None) -> bool:
    matcher_region = region.upper() if region else None
    # VALID keeps dates, ids and counts out; POSSIBLE numbers are accepted
    # only when written with "+", a clear sign someone meant a phone number.
    for match in PhoneNumberMatcher(text, matcher_region, leniency=Leniency.POSSIBLE):
        raw = match.raw_string
        if raw.lstrip("(").startswith("+"):
            if _digit_count(raw) >= _MIN_INTERNATIONAL_DIGITS:
                return True
        elif phonenumbers.is_valid_number(match.number):
            return True
    return False


def _shape_finds(text: str, start: int, end: int) -> bool:
    # Searching the whole text between bounds lets the lookbehind see the
    # character before the stretch; endpos leaves room for the lookahead.
    for m in _PHONE_SHAPES_RE.finditer(text, start, min(len(text), end + 1)):
        digits = _digit_count(m.group())
        if 7 <= digits <= _MAX_PHONE_DIGITS:
            return True
    return False


def _digit_count(text: str) -> int:
    return sum(c.isdigit() for c in text)


# -- addresses ----------------------------------------------------------------

# Words that never sit inside a street name but often sit between a number
# and a street-like word in ordinary sentences ("25 volunteers on Main St",
# "a 5 hour drive", "via email 3 times").
_STOPWORDS = """
    a an the and or but nor at on in to into onto for from by of off with without
    is are was were be been am i you he she it we they me us him her them my our
    your their its this that these those there here next last every each per
    about around after before until till since near than then more less only just
    over under some any all no not very so too also can will would should could
    pm am hour hours hr hrs minute minutes min mins second seconds mile miles km
    meter meters metre metres day days week weeks month months year years time
    times people persons volunteers members folks friends votes signatures
    email mail zoom bus train text app phone call link meeting event events
    one two three four five six seven eight nine ten way lane
""".split()
_STOP = "|".join(sorted(set(_STOPWORDS), key=len, reverse=True))
_NAME = rf"(?!(?:{_STOP})\b)[a-z0-9][\w'’.-]*"
# A house number: not part of a time, date, price, id or decimal.
_NUM = r"(?<![\w$€£¥#/:.,+-])\d{1,5}[a-z]?(?:-\d{1,5}[a-z]?)?(?![\w:%/]|[.,-]\d)"

_EN_SUFFIXES = """
    street st avenue ave road rd boulevard blvd lane ln drive dr court ct place pl
    terrace ter circle cir highway hwy parkway pkwy square sq crescent cres
    alley expressway expy freeway fwy turnpike tpke
""".split()
_NUMBER_FIRST_WORDS = "rue avenue boulevard bd chemin allee impasse quai".split()
_WORD_FIRST = """
    calle avenida avda av\\. rua via viale piazza piazzale corso largo carrer
    paseo plaza praca
""".split()
_COMPOUND_ENDINGS = (
    "strasse str\\. gasse platz allee straat laan gracht plein steeg kade dijk singel"
)


def _alternation(words: list[str]) -> str:
    return "|".join(sorted(words, key=len, reverse=True))


_ADDRESS_RE = re.compile(
    rf"""
      (?P<num_first>{_NUM}\s+(?:{_NAME}\s+){{1,4}}?(?:{_alternation(_EN_SUFFIXES)})\b\.?)
    | {_NUM},?\s+(?:{_alternation(_NUMBER_FIRST_WORDS)})\s+[a-z]
    | \b(?:{_alternation(_WORD_FIRST)})\s+(?:{_NAME}\s+){{0,3}}?{_NAME},?\s+{_NUM}
    | \b(?:[a-z]{{3,}})?(?:{_COMPOUND_ENDINGS.replace(" ", "|")})\s*{_NUM}
    """,
    re.VERBOSE,
)
_ANY_DIGIT_RE = re.compile(r"\d")
_STREET_WORDS = frozenset(w.rstrip("\\.") for w in _EN_SUFFIXES + _NUMBER_FIRST_WORDS + _WORD_FIRST)
_COMPOUND_RE = re.compile(_COMPOUND_ENDINGS.replace(" ", "|"))
_STREET_WORD_RE = re.compile(
    rf"""\b(?:{_alternation(_EN_SUFFIXES + _NUMBER_FIRST_WORDS + _WORD_FIRST)})(?!\w)
    | (?:{_COMPOUND_ENDINGS.replace(" ", "|")})""",
    re.VERBOSE,
)
# "in 2026 Main Street was closed": a year, not a house number.
_YEAR_CONTEXT_RE = re.compile(r"\b(?:in|since|by|until|till|from|of|before|after|during)\s+$")
_YEAR_RE = re.compile(r"(?:19|20)\d\d")
_YEAR_CONTEXT_WINDOW = 12


def contains_address(folded: str, tokens: Collection[str] | None = None) -> bool:
    """True if folded text holds something that reads as a street address.

    `tokens` (`textnorm.tokenize(folded)`), when the caller has them, make
    the check for a street word a set operation instead of a regex scan.
    """
    # Cheap gates first: most posts have no digit or no street word at all.
    if not _ANY_DIGIT_RE.search(folded):
        return False
    if tokens is not None:
        if _STREET_WORDS.isdisjoint(tokens) and not _COMPOUND_RE.search(folded):
            return False
    elif not _STREET_WORD_RE.search(folded):
        return False
    for m in _ADDRESS_RE.finditer(folded):
        if m.group("num_first") and _is_year(folded, m.start(), m.group()):
            continue
        return True
    return False


def _is_year(text: str, start: int, matched: str) -> bool:
    number = re.match(r"\d+", matched)
    if number is None or not _YEAR_RE.fullmatch(number.group()):
        return False
    before = text[max(0, start - _YEAR_CONTEXT_WINDOW) : start]
    return _YEAR_CONTEXT_RE.search(before) is not None
