"""Time in one place, so age arithmetic and deadlines can be tested on chosen days."""

from __future__ import annotations

from datetime import UTC, date, datetime


class Clock:
    """The real UTC clock."""

    def now(self) -> datetime:
        return datetime.now(UTC)

    def today(self) -> date:
        """Today's UTC date: ages are counted on it (API.md)."""
        return self.now().date()


class FixedClock(Clock):
    """A clock that reads a set instant; tests move it forward explicitly."""

    def __init__(self, instant: datetime) -> None:
        self.instant = instant

    def now(self) -> datetime:
        return self.instant


def iso(moment: datetime) -> str:
    """ISO-8601 with a Z offset, as the contract writes timestamps."""
    return moment.astimezone(UTC).isoformat().replace("+00:00", "Z")


def parse_iso(text: str) -> datetime:
    """The inverse of iso(): a stored or contract timestamp back to an aware datetime."""
    return datetime.fromisoformat(text.replace("Z", "+00:00"))
