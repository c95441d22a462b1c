"""Presentation helpers: times, deadlines, and score explanations a reviewer can read."""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

from agegate.clock import parse_iso

# Decisions each case kind allows (API.md, review queue), with the wording on the button.
DECISIONS: dict[str, list[tuple[str, str]]] = {
    "classifier": [
        ("confirm_minor", "Confirm minor and terminate the account"),
        ("request_verification", "Request age verification (restricts the account)"),
        ("not_minor", "Not a minor: clear the case"),
    ],
    "parent_request": [
        ("fulfill", "Fulfil the parent's request"),
        ("reject", "Reject the request"),
    ],
}
DECISIONS["report"] = DECISIONS["classifier"]
DECISIONS["content_removal"] = DECISIONS["classifier"]
DECISIONS["age_signal"] = DECISIONS["classifier"]
DECISIONS["appeal"] = [
    ("overturn", "Overturn: reinstate the account"),
    ("uphold", "Uphold: the restriction or termination stands"),
]
# Decisions that end an account, act on a parent's request or undo an enforcement must say why,
# for the audit trail.
NOTE_REQUIRED = frozenset({"confirm_minor", "fulfill", "overturn"})

KIND_LABELS = {
    "classifier": "Classifier",
    "report": "User report",
    "parent_request": "Parent request",
    "content_removal": "Content removal",
    "age_signal": "Age signal",
    "appeal": "Appeal",
}
# Where a platform age signal came from, and how sure it is (IEEE 2089.1 levels).
SOURCE_LABELS = {
    "apple_declared_age_range": "Apple Declared Age Range",
    "google_play_age_signals": "Google Play Age Signals",
    "os_age_signal": "Operating-system age signal",
    "age_assurance_vendor": "Age-assurance vendor",
    "self_declared": "Self-declared",
}


def age_range(lower: Any, upper: Any) -> str:
    """`13-15`, or `18+` for an open-ended range."""
    return f"{lower}+" if upper is None else f"{lower}-{upper}"
# Parent requests must be answered within 30 days of submission; flag them a week ahead.
DUE_SOON = timedelta(days=7)

_SIGNAL_PHRASES = {
    "word": "the word “{}” in messages",
    "term": "the word “{}” in messages",
    "token": "the word “{}” in messages",
    "text": "the wording “{}” in messages",
    "payment": "paying with {}",
    "report": "a user report ({})",
    "session": "session pattern: {}",
    "signal": "{}",
}


def parse_time(value: Any) -> datetime | None:
    """A datetime from a service value (datetime or ISO-8601 text); None stays None."""
    if value is None or value == "":
        return None
    if isinstance(value, datetime):
        return value
    try:
        return parse_iso(str(value))
    except ValueError:
        return None


def when(value: Any) -> str:
    """`2026-11-24 13:30 UTC`."""
    moment = parse_time(value)
    return moment.strftime("%Y-%m-%d %H:%M UTC") if moment else "—"


def duration(delta: timedelta) -> str:
    """A short human duration: `3 d 4 h`, `2 h 5 min`, `4 min 10 s`."""
    seconds = max(int(delta.total_seconds()), 0)
    days, rest = divmod(seconds, 86_400)
    hours, rest = divmod(rest, 3600)
    minutes, secs = divmod(rest, 60)
    if days:
        return f"{days} d {hours} h"
    if hours:
        return f"{hours} h {minutes} min"
    if minutes:
        return f"{minutes} min {secs} s"
    return f"{secs} s"


def deadline(due: Any, now: datetime) -> dict[str, Any] | None:
    """How a due date should stand out: overdue, due soon, or fine."""
    moment = parse_time(due)
    if moment is None:
        return None
    if moment <= now:
        return {"state": "overdue", "text": f"Overdue by {duration(now - moment)}"}
    if moment - now <= DUE_SOON:
        return {"state": "soon", "text": f"Due in {duration(moment - now)}"}
    return {"state": "ok", "text": f"Due in {duration(moment - now)}"}


# The trained model's own names (agegate/model.py: `text:<n-gram>`, `activity:<feature>` and the
# RULES), in a reviewer's words.
_NAMED_SIGNALS = {
    "activity:weekend_share": "the share of messages sent at weekends",
    "activity:summer_share": "the share of messages sent in June to August",
    "activity:winter_break_share": "the share of messages sent between 20 Dec and 3 Jan",
    "activity:log_posting_rate": "how often the account posts",
    "activity:mean_log_length": "the length of the messages",
    "reports:suspected_minor": "user reports of a suspected minor",
    "age_gate:redeclaration": "retrying the age gate with another birth date",
    "account:dob_change": "changing the date of birth after sign-up",
    "age_signal:verified_adult": "a platform age signal at enhanced assurance (ID checked or "
                                 "confirmed) saying the holder is an adult",
}


def signal_phrase(name: str) -> str:
    """Turn a model feature name such as `text:homework`, `activity:weekend_share` or
    `payment:prepaid_card` into words."""
    if name in _NAMED_SIGNALS:
        return _NAMED_SIGNALS[name]
    prefix, sep, rest = name.partition(":")
    if prefix == "text" and sep:
        # A vocabulary n-gram of the text model: one word or a two-word phrase.
        return f"the {'words' if ' ' in rest.strip() else 'word'} “{rest}” in messages"
    if not sep:
        prefix, sep, rest = name.partition("=")
    if sep and prefix in _SIGNAL_PHRASES:
        return _SIGNAL_PHRASES[prefix].format(rest.replace("_", " "))
    return name.replace("_", " ").replace(":", ": ")


def explain(top_signals: list[dict[str, Any]] | None) -> list[dict[str, Any]]:
    """Sentences and bar widths (percent of the strongest) for the signals behind a score."""
    signals = [s for s in (top_signals or []) if isinstance(s, dict) and "name" in s]
    strongest = max((abs(float(s.get("weight") or 0)) for s in signals), default=0.0) or 1.0
    rows = []
    for item in signals:
        weight = float(item.get("weight") or 0)
        phrase = signal_phrase(str(item["name"]))
        direction = ("pushed the score up" if weight > 0 else "pulled the score down"
                     if weight < 0 else "is a stated rule shown to you; it did not change the "
                     "score")
        rows.append({
            "name": str(item["name"]),
            "weight": weight,
            "sentence": f"{phrase[:1].upper()}{phrase[1:]} {direction} ({weight:+.2f}).",
            "percent": round(100 * abs(weight) / strongest),
            "direction": "up" if weight >= 0 else "down",
        })
    return rows


def band_of(score: Any) -> str | None:
    """A label for a score when the service gave no band (low < 0.4 <= medium < 0.7 <= high)."""
    try:
        value = float(score)
    except (TypeError, ValueError):
        return None
    return "high" if value >= 0.7 else "medium" if value >= 0.4 else "low"
