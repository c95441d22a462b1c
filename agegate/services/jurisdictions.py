"""Jurisdictions: one table in the repository (agegate/data/jurisdictions.json) that says, per
country or subdivision, the minimum age, whether an operating-system or app-store age signal is
required and since when, under which law, and how sure we are. The age check reads its minimum
age from the same table. Operators add or override rows with AGEGATE_JURISDICTIONS_FILE.
"""

from __future__ import annotations

import copy
import json
import re
from importlib import resources
from pathlib import Path
from typing import Any

from agegate.errors import NotFound

# ISO 3166-1 alpha-2, officially assigned codes.
COUNTRIES = frozenset(
    """AD AE AF AG AI AL AM AO AQ AR AS AT AU AW AX AZ BA BB BD BE BF BG BH BI BJ BL BM BN BO BQ
    BR BS BT BV BW BY BZ CA CC CD CF CG CH CI CK CL CM CN CO CR CU CV CW CX CY CZ DE DJ DK DM DO
    DZ EC EE EG EH ER ES ET FI FJ FK FM FO FR GA GB GD GE GF GG GH GI GL GM GN GP GQ GR GS GT GU
    GW GY HK HM HN HR HT HU ID IE IL IM IN IO IQ IR IS IT JE JM JO JP KE KG KH KI KM KN KP KR KW
    KY KZ LA LB LC LI LK LR LS LT LU LV LY MA MC MD ME MF MG MH MK ML MM MN MO MP MQ MR MS MT MU
    MV MW MX MY MZ NA NC NE NF NG NI NL NO NP NR NU NZ OM PA PE PF PG PH PK PL PM PN PR PS PT PW
    PY QA RE RO RS RU RW SA SB SC SD SE SG SH SI SJ SK SL SM SN SO SR SS ST SV SX SY SZ TC TD TF
    TG TH TJ TK TL TM TN TO TR TT TV TW TZ UA UG UM US UY UZ VA VC VE VG VI VN WF WS YE YT ZA
    ZM ZW""".split()
)


DEFAULT_ROW = "*"
# ISO 3166-1 alpha-2, optionally with an ISO 3166-2 subdivision: `US`, `US-CA`, `JP-13`.
CODE = re.compile(r"^[A-Z]{2}(-[A-Z0-9]{1,3})?$")
STATUSES = ("in_force", "enacted", "in_litigation", "none_recorded")
WHEN = ("download", "launch", "purchase", "significant_change", "account_creation")
ROW_FIELDS = {"name", "minimum_age", "status", "uncertain", "note", "age_signal", "rerequest",
              "sources"}
SIGNAL_FIELDS = {"required", "effective", "when", "law"}


class JurisdictionError(ValueError):
    """A jurisdiction table (shipped or an operator's file) that cannot be used."""


def shipped_rows() -> dict[str, dict[str, Any]]:
    """The table kept in the repository (package data)."""
    text = resources.files("agegate.data").joinpath("jurisdictions.json").read_text("utf-8")
    return {k: v for k, v in json.loads(text).items() if not k.startswith("_")}


def _parent(code: str) -> str:
    return code.split("-", 1)[0] if "-" in code else DEFAULT_ROW


def _check_row(code: str, row: dict[str, Any]) -> None:
    """A complete row with the right types, or JurisdictionError naming the problem."""
    where = f"jurisdiction {code}"
    if code != DEFAULT_ROW and not CODE.match(code):
        raise JurisdictionError(f"{where}: not an ISO 3166 code such as US or US-CA")
    if set(row) != ROW_FIELDS:
        missing, extra = ROW_FIELDS - set(row), set(row) - ROW_FIELDS
        raise JurisdictionError(f"{where}: missing {sorted(missing)}, unknown {sorted(extra)}")
    age = row["minimum_age"]
    if age is not None and (not isinstance(age, int) or isinstance(age, bool)
                            or not 13 <= age <= 25):
        raise JurisdictionError(f"{where}: minimum_age must be null or 13..25")
    if row["status"] not in STATUSES:
        raise JurisdictionError(f"{where}: status must be one of {', '.join(STATUSES)}")
    if not isinstance(row["uncertain"], bool):
        raise JurisdictionError(f"{where}: uncertain must be true or false")
    signal = row["age_signal"]
    if not isinstance(signal, dict) or set(signal) != SIGNAL_FIELDS:
        raise JurisdictionError(f"{where}: age_signal needs exactly {sorted(SIGNAL_FIELDS)}")
    if not isinstance(signal["required"], bool):
        raise JurisdictionError(f"{where}: age_signal.required must be true or false")
    effective = signal["effective"]
    if effective is not None and not re.fullmatch(r"\d{4}-\d{2}-\d{2}", str(effective)):
        raise JurisdictionError(f"{where}: age_signal.effective must be null or YYYY-MM-DD")
    if not isinstance(signal["when"], list) or not set(signal["when"]) <= set(WHEN):
        raise JurisdictionError(f"{where}: age_signal.when takes {', '.join(WHEN)}")
    if not isinstance(row["sources"], list) or not all(isinstance(s, str)
                                                       for s in row["sources"]):
        raise JurisdictionError(f"{where}: sources must be a list of strings")
    for name in ("name", "note", "rerequest"):
        if not isinstance(row[name], str) or not row[name]:
            raise JurisdictionError(f"{where}: {name} must be text")
    if not isinstance(signal["law"], str) or not signal["law"]:
        raise JurisdictionError(f"{where}: age_signal.law must cite the law (or say none)")


class JurisdictionTable:
    """The shipped rows, an operator's file merged over them, and AGEGATE_MINIMUM_AGES on top.

    An operator's row is merged field by field over the row it overrides (age_signal too); a new
    row starts from its parent's (US-NY from US, FR from `*`), so a file may hold just the
    fields it changes. Every row is checked at start-up: a bad file stops the service.
    """

    def __init__(self, rows: dict[str, dict[str, Any]], default_minimum_age: int = 18) -> None:
        self.rows = rows
        self.default_minimum_age = default_minimum_age
        if DEFAULT_ROW not in rows:
            raise JurisdictionError("the table needs a '*' row for places without one")
        for code, row in rows.items():
            _check_row(code, row)

    @classmethod
    def build(cls, overrides_file: Path | None = None, minimum_ages: dict[str, int] | None = None,
              default_minimum_age: int = 18) -> JurisdictionTable:
        """The table the service runs with."""
        rows = shipped_rows()
        extra: dict[str, Any] = {}
        if overrides_file is not None:
            try:
                extra = json.loads(Path(overrides_file).read_text("utf-8"))
            except (OSError, ValueError) as error:
                raise JurisdictionError(f"{overrides_file}: {error}") from None
            if not isinstance(extra, dict):
                raise JurisdictionError(f"{overrides_file}: must be a JSON object of rows")
        extra = {k.upper(): v for k, v in extra.items() if not k.startswith("_")}
        for code, age in (minimum_ages or {}).items():
            extra[code] = {**extra.get(code, {}), "minimum_age": age}
        # Countries before subdivisions, so US-NY inherits an overridden US.
        for code in sorted(extra, key=lambda c: (c != DEFAULT_ROW, "-" in c, c)):
            change = extra[code]
            if not isinstance(change, dict):
                raise JurisdictionError(f"jurisdiction {code}: a row must be a JSON object")
            base = rows.get(code)
            if base is None:
                parent = _parent(code)
                base = rows.get(parent) or rows[DEFAULT_ROW]
            merged = {**copy.deepcopy(base), **change}
            if isinstance(change.get("age_signal"), dict):
                merged["age_signal"] = {**base["age_signal"], **change["age_signal"]}
            rows[code] = merged
        return cls(rows, default_minimum_age)

    def resolve(self, code: str) -> tuple[str, dict[str, Any]]:
        """The most specific row for `code`: itself, its country, or `*`."""
        for candidate in (code, _parent(code), DEFAULT_ROW):
            if candidate in self.rows:
                return candidate, self.rows[candidate]
        raise KeyError(code)  # unreachable: the '*' row is required

    def minimum_age_of(self, code: str) -> int:
        """The minimum age where `code` is; a row's null inherits its country's, then the
        default (the platform's own 18+ terms)."""
        for candidate in (code, _parent(code), DEFAULT_ROW):
            row = self.rows.get(candidate)
            if row is not None and row["minimum_age"] is not None:
                return int(row["minimum_age"])
        return self.default_minimum_age

    def lookup(self, code: str) -> dict[str, Any]:
        """The API's answer for `code` (`GET /v1/jurisdictions/{code}`).

        A well-formed code of a real country is always answered, from the most specific row
        (US-NY from US, FR from `*`), with `resolved_from` naming that row; anything else is
        NotFound, since there is no place to describe.
        """
        code = code.strip().upper()
        if not CODE.match(code) or code.split("-", 1)[0] not in COUNTRIES:
            raise NotFound("No such jurisdiction: use an ISO 3166 code such as US or US-CA.")
        used, row = self.resolve(code)
        return {
            "jurisdiction": code,
            "resolved_from": used,
            "name": row["name"],
            "minimum_age": self.minimum_age_of(code),
            "age_signal": dict(row["age_signal"]),
            "rerequest": row["rerequest"],
            "sources": list(row["sources"]),
            "status": row["status"],
            "uncertain": row["uncertain"],
            "note": row["note"],
        }


class MinimumAgePolicy:
    """The age check's minimum age, from the jurisdiction table: the most specific row wins
    (`US-AL`, then `US`, then the default: 18 everywhere, the platform's own terms)."""

    def __init__(self, table: JurisdictionTable) -> None:
        self.table = table

    def minimum_age(self, country: str, region: str | None) -> int:
        return self.table.minimum_age_of(f"{country}-{region}" if region else country)
