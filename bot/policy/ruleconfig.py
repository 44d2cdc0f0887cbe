"""Moderation rules from plain config: defaults, validation, /rules, /setrule.

The config is the `rules:` block of a group's settings, as plain dicts:

    rules:
      blocklist:  {enabled: true, words: [..], patterns: [..], ladder: [..], shadow: false}
      links:      {policy: listed, allowed_domains: [example.org]}
      flood:      {max_messages: 5, per_seconds: 30}
      max_length: {max_chars: 1000}
      doxxing:    {enabled: true, region: US}

Every key is optional and has a default. Every rule also takes `enabled`,
`ladder`, `shadow` (log only) and `description` (what members read in /rules;
left out, a description is written from the settings).

Errors name the key in full ("rules.flood.per_seconds must be a positive
number of seconds, at most 86400") and never echo member text.
"""

from __future__ import annotations

import copy
import math
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from bot.policy import doxxing, links, textnorm
from bot.policy.blocklist import entry_tokens, pattern_error
from bot.policy.ladder import DEFAULT_LADDER, describe_ladder, ladder_error
from bot.policy.rules import (
    SCAN_LIMIT,
    BlocklistRule,
    DoxxingRule,
    FloodRule,
    LinkRule,
    MaxLengthRule,
    Rule,
)

__all__ = [
    "RULE_NAMES",
    "apply_override",
    "build_rules",
    "describe_rules",
    "effective_config",
    "validate_config",
]

RULE_NAMES = ("blocklist", "links", "flood", "max_length", "doxxing")
LINK_POLICIES = ("all", "listed", "none")
MAX_WORDS = 10_000
MAX_WORD_CHARS = 100
MAX_PATTERNS = 100
MAX_PATTERN_CHARS = 500
MAX_DOMAINS = 500
MAX_DESCRIPTION_CHARS = 200
MAX_FLOOD_WINDOW = 86_400  # a day, in seconds

# -- field checks: each returns None, or the rest of an error sentence that
# -- follows the key ("... must be ...", "...[3] is empty").

Check = Callable[[Any], str | None]


def _is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _check_bool(value: Any) -> str | None:
    return None if isinstance(value, bool) else " must be true or false"


def _check_int(lo: int, hi: int) -> Check:
    def check(value: Any) -> str | None:
        if _is_int(value) and lo <= value <= hi:
            return None
        return f" must be a whole number from {lo} to {hi}"

    return check


def _check_seconds(value: Any) -> str | None:
    if (
        isinstance(value, int | float)
        and not isinstance(value, bool)
        and math.isfinite(value)
        and 0 < value <= MAX_FLOOD_WINDOW
    ):
        return None
    return f" must be a positive number of seconds, at most {MAX_FLOOD_WINDOW}"


def _check_choice(choices: Sequence[str]) -> Check:
    def check(value: Any) -> str | None:
        return None if value in choices else f" must be one of: {', '.join(choices)}"

    return check


def _check_description(value: Any) -> str | None:
    if value is None or (
        isinstance(value, str) and 0 < len(value.strip()) <= MAX_DESCRIPTION_CHARS
    ):
        return None
    return f" must be a short text (1 to {MAX_DESCRIPTION_CHARS} characters)"


def _check_region(value: Any) -> str | None:
    if value is None or (isinstance(value, str) and doxxing.region_supported(value)):
        return None
    return " must be a two-letter country code like US or NL, or null"


def _check_ladder(value: Any) -> str | None:
    error = ladder_error(value)
    return None if error is None else f" {error}"


def _check_list(limit: int, item: Callable[[str], str | None]) -> Check:
    def check(value: Any) -> str | None:
        if isinstance(value, str) or not isinstance(value, Sequence):
            return " must be a list"
        if len(value) > limit:
            return f" has more than {limit} entries"
        for i, entry in enumerate(value):
            if not isinstance(entry, str):
                return f"[{i}] must be text"
            problem = item(entry)
            if problem:
                return f"[{i}] {problem}"
        return None

    return check


def _word_problem(word: str) -> str | None:
    if len(word) > MAX_WORD_CHARS:
        return f"is longer than {MAX_WORD_CHARS} characters"
    if not entry_tokens(word):
        return "has no letters or digits"
    return None


def _pattern_problem(pattern: str) -> str | None:
    if len(pattern) > MAX_PATTERN_CHARS:
        return f"is longer than {MAX_PATTERN_CHARS} characters"
    error = pattern_error(pattern)
    return None if error is None else f"is not a valid regular expression ({error})"


def _domain_problem(domain: str) -> str | None:
    ascii_form = links.ascii_host(domain)
    if ascii_form is None or "." not in ascii_form or any(c in domain for c in "/: @"):
        return "is not a domain name, like example.org"
    return None


# -- parsing /setrule values -----------------------------------------------

_TRUE = frozenset({"on", "yes", "true", "1", "enable", "enabled"})
_FALSE = frozenset({"off", "no", "false", "0", "disable", "disabled"})
_NULL = frozenset({"", "none", "null", "off", "default", "auto"})


def _parse_bool(text: str) -> bool:
    word = text.strip().lower()
    if word in _TRUE:
        return True
    if word in _FALSE:
        return False
    raise ValueError("must be on or off")


def _parse_int(text: str) -> int:
    try:
        return int(text.strip())
    except ValueError:
        raise ValueError("must be a whole number, like 5") from None


def _parse_number(text: str) -> float | int:
    try:
        number = float(text.strip())
    except ValueError:
        raise ValueError("must be a number, like 30") from None
    return int(number) if number.is_integer() else number


def _parse_word(text: str) -> str:
    return text.strip().lower()


def _parse_text(text: str) -> str | None:
    return text.strip() or None


def _parse_region(text: str) -> str | None:
    word = text.strip()
    return None if word.lower() in _NULL else word.upper()


def _parse_list(text: str) -> list[str]:
    # Commas separate entries so that phrases ("go die") can hold spaces.
    return [part.strip() for part in text.split(",") if part.strip()]


def _parse_ladder(text: str) -> list[str]:
    return [part for part in text.replace(",", " ").split() if part]


@dataclass(frozen=True)
class _Field:
    default: Any
    check: Check
    parse: Callable[[str], Any]


def _common(ladder: Sequence[str]) -> dict[str, _Field]:
    return {
        "enabled": _Field(True, _check_bool, _parse_bool),
        "ladder": _Field(list(ladder), _check_ladder, _parse_ladder),
        "shadow": _Field(False, _check_bool, _parse_bool),
        "description": _Field(None, _check_description, _parse_text),
    }


SCHEMA: dict[str, dict[str, _Field]] = {
    "blocklist": {
        **_common(DEFAULT_LADDER),
        "words": _Field([], _check_list(MAX_WORDS, _word_problem), _parse_list),
        "patterns": _Field([], _check_list(MAX_PATTERNS, _pattern_problem), _parse_list),
        "pattern_timeout_ms": _Field(50, _check_int(1, 1000), _parse_int),
    },
    "links": {
        **_common(("hold", "warn", "mute:24h")),
        "policy": _Field("all", _check_choice(LINK_POLICIES), _parse_word),
        "allowed_domains": _Field([], _check_list(MAX_DOMAINS, _domain_problem), _parse_list),
    },
    "flood": {
        **_common(("hold", "mute:24h")),
        "max_messages": _Field(5, _check_int(1, 1000), _parse_int),
        "per_seconds": _Field(30, _check_seconds, _parse_number),
    },
    "max_length": {
        **_common(("hold",)),
        "max_chars": _Field(1000, _check_int(1, SCAN_LIMIT), _parse_int),
    },
    "doxxing": {
        **_common(("hold", "warn", "remove")),
        "region": _Field(None, _check_region, _parse_region),
        "phones": _Field(True, _check_bool, _parse_bool),
        "addresses": _Field(True, _check_bool, _parse_bool),
    },
}

# /setrule shorthands: "<rule>.add X" / "<rule>.remove X" edit the rule's main list.
_LIST_OPS: dict[str, tuple[str, str]] = {
    "blocklist.add": ("words", "add"),
    "blocklist.remove": ("words", "remove"),
    "blocklist.add_pattern": ("patterns", "add"),
    "blocklist.remove_pattern": ("patterns", "remove"),
    "links.add": ("allowed_domains", "add"),
    "links.remove": ("allowed_domains", "remove"),
    "links.allow": ("allowed_domains", "add"),
    "links.disallow": ("allowed_domains", "remove"),
}


# -- validation ----------------------------------------------------------------


def _config_errors(config: Any) -> list[str]:
    if config is None:
        return []
    if not isinstance(config, Mapping):
        return ["the moderation config must be a mapping with a 'rules' key"]
    errors = [
        f"{key!s} is not a setting here (expected: rules)" for key in config if key != "rules"
    ]
    rules = config.get("rules")
    if rules is None:
        return errors
    if not isinstance(rules, Mapping):
        return [*errors, "rules must be a mapping of rule names to their settings"]
    for name, settings in rules.items():
        errors.extend(_rule_errors(name, settings))
    return errors


def _rule_errors(name: Any, settings: Any) -> list[str]:
    if name not in SCHEMA:
        return [f"rules.{name!s} is not a rule; the rules are: {', '.join(RULE_NAMES)}"]
    if settings is None:
        return []
    if not isinstance(settings, Mapping):
        return [f"rules.{name} must be a mapping of settings (or left empty)"]
    fields = SCHEMA[name]
    errors = []
    for key, value in settings.items():
        path = f"rules.{name}.{key!s}"
        if key not in fields:
            errors.append(f"{path} is not a setting; {name} settings are: {', '.join(fields)}")
            continue
        problem = fields[key].check(value)
        if problem:
            errors.append(path + problem)
    return errors


def validate_config(config: Any) -> str | None:
    """The first problem with a moderation config, naming its key; None if valid."""
    errors = _config_errors(config)
    return errors[0] if errors else None


def effective_config(config: Mapping[str, Any] | None) -> dict[str, Any]:
    """The complete config: every rule and every key, defaults filled in."""
    given = (config or {}).get("rules") or {}
    return {
        "rules": {
            name: {
                key: copy.deepcopy((given.get(name) or {}).get(key, spec.default))
                for key, spec in fields.items()
            }
            for name, fields in SCHEMA.items()
        }
    }


# -- building --------------------------------------------------------------------


def build_rules(config: Mapping[str, Any] | None) -> list[Rule]:
    """Rule objects for a group's config; ValueError (naming the key) if invalid."""
    error = validate_config(config)
    if error:
        raise ValueError(error)
    settings = effective_config(config)["rules"]
    rules: list[Rule] = []
    for name, builder in _BUILDERS.items():
        rule_settings = settings[name]
        if rule_settings["enabled"]:
            rule = builder(rule_settings, _base(rule_settings))
            if rule is not None:
                rules.append(rule)
    return rules


def _base(settings: Mapping[str, Any]) -> dict[str, Any]:
    base: dict[str, Any] = {
        "ladder": tuple(s.strip().lower() for s in settings["ladder"]),
        "shadow": settings["shadow"],
    }
    if settings["description"]:
        base["description"] = settings["description"].strip()
    return base


def _build_blocklist(s: Mapping[str, Any], base: dict[str, Any]) -> Rule | None:
    if not s["words"] and not s["patterns"]:
        return None  # nothing to block: no rule, no cost
    return BlocklistRule(
        words=tuple(s["words"]),
        patterns=tuple(s["patterns"]),
        pattern_timeout=s["pattern_timeout_ms"] / 1000,
        **base,
    )


def _build_links(s: Mapping[str, Any], base: dict[str, Any]) -> Rule | None:
    if s["policy"] == "all":
        return None
    domains = tuple(d.strip().lower() for d in s["allowed_domains"])
    if "description" not in base:
        if s["policy"] == "listed" and domains:
            base["description"] = "Links only to " + ", ".join(domains)
        else:
            base["description"] = "No links"
    return LinkRule(policy=s["policy"], allowed_domains=domains, **base)


def _build_flood(s: Mapping[str, Any], base: dict[str, Any]) -> Rule:
    n, t = s["max_messages"], s["per_seconds"]
    base.setdefault("description", f"No more than {n} messages in {t:g} seconds")
    return FloodRule(max_messages=n, per_seconds=float(t), **base)


def _build_max_length(s: Mapping[str, Any], base: dict[str, Any]) -> Rule:
    base.setdefault("description", f"Messages of at most {s['max_chars']} characters")
    return MaxLengthRule(max_chars=s["max_chars"], **base)


def _build_doxxing(s: Mapping[str, Any], base: dict[str, Any]) -> Rule | None:
    if not s["phones"] and not s["addresses"]:
        return None
    if "description" not in base and not s["addresses"]:
        base["description"] = "No phone numbers: protect people's privacy"
    elif "description" not in base and not s["phones"]:
        base["description"] = "No home addresses: protect people's privacy"
    region = s["region"].upper() if s["region"] else None
    return DoxxingRule(region=region, phones=s["phones"], addresses=s["addresses"], **base)


_BUILDERS: dict[str, Callable[[Mapping[str, Any], dict[str, Any]], Rule | None]] = {
    "blocklist": _build_blocklist,
    "links": _build_links,
    "flood": _build_flood,
    "max_length": _build_max_length,
    "doxxing": _build_doxxing,
}


# -- /rules ---------------------------------------------------------------------


def describe_rules(rules: Sequence[Rule]) -> list[str]:
    """One plain-language line per rule, for members (`/rules CODE`).

    Never lists blocked words: that would publish the slurs and teach evasion.
    """
    lines = []
    for rule in rules:
        line = f"{rule.description.rstrip('. ')} ({describe_ladder(rule.ladder)})."
        if rule.shadow:
            line += " (On trial: noted, not enforced yet.)"
        lines.append(line)
    return lines


# -- /setrule --------------------------------------------------------------------


def apply_override(config: Mapping[str, Any] | None, key: str, value: str) -> dict[str, Any]:
    """A new config with a moderator's `/setrule CODE KEY VALUE` applied.

    Keys are "<rule>.<setting>" ("flood.max_messages", "links.policy",
    "doxxing.enabled", "blocklist.shadow") or the list shorthands
    "blocklist.add", "blocklist.remove", "blocklist.add_pattern",
    "blocklist.remove_pattern", "links.add", "links.remove". Lists take
    comma-separated values. The input config is not modified.
    Raises ValueError with a one-line message meant for the moderator.
    """
    key = key.strip().lower()
    rule_name, _, setting = key.partition(".")
    if rule_name not in SCHEMA:
        raise ValueError(f"'{rule_name}' is not a rule. The rules are: {', '.join(RULE_NAMES)}.")
    new = copy.deepcopy(dict(config or {}))
    rules = new.setdefault("rules", {})
    if not isinstance(rules, dict):
        raise ValueError("this group's rules config is not a mapping; fix it in the config file")
    rule_settings = rules.get(rule_name)
    if rule_settings is None:
        rule_settings = rules[rule_name] = {}
    if not isinstance(rule_settings, dict):
        raise ValueError(f"the '{rule_name}' settings are broken; fix them in the config file")
    if key in _LIST_OPS:
        field_name, op = _LIST_OPS[key]
        rule_settings[field_name] = _edit_list(rule_name, field_name, rule_settings, op, value)
    elif setting in SCHEMA[rule_name]:
        try:
            rule_settings[setting] = SCHEMA[rule_name][setting].parse(value)
        except ValueError as exc:
            raise ValueError(f"{key} {exc} (got '{value.strip()}')") from None
    else:
        choices = [f"{rule_name}.{s}" for s in SCHEMA[rule_name]]
        choices += [k for k in _LIST_OPS if k.startswith(rule_name + ".")]
        raise ValueError(f"'{key}' is not a setting. Try one of: {', '.join(choices)}.")
    error = validate_config(new)
    if error:
        raise ValueError(error.removeprefix("rules.") + ".")
    return new


def _edit_list(
    rule_name: str, field_name: str, settings: Mapping[str, Any], op: str, value: str
) -> list[str]:
    current = settings.get(field_name)
    if current is None:
        current = list(SCHEMA[rule_name][field_name].default)
    if not isinstance(current, list):
        raise ValueError(f"{rule_name}.{field_name} is not a list; fix it in the config file")
    items = _parse_list(value)
    if not items:
        raise ValueError(f"say what to {op}, like: {rule_name}.{op} something")
    # Patterns are compared as written; words and domains as members would
    # see them, so "Idiot" and "idiot" are one entry.
    same = (lambda s: s) if field_name == "patterns" else _entry_key
    if op == "add":
        known = {same(existing) for existing in current}
        return current + [item for item in items if same(item) not in known]
    unknown = [item for item in items if same(item) not in {same(e) for e in current}]
    if unknown:
        raise ValueError(f"'{unknown[0]}' is not in {rule_name}.{field_name}")
    drop = {same(item) for item in items}
    return [existing for existing in current if same(existing) not in drop]


def _entry_key(text: str) -> str:
    return " ".join(textnorm.tokenize(textnorm.fold(text)))
