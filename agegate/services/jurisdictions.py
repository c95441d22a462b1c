"""Jurisdictions: one table in the repository (agegate/data/jurisdictions.json) that says, per
country or subdivision, the minimum age, whether an operating-system or app-store age signal is
required and since when, whether a declared age is enough or which age-assurance methods count
(`assurance`), under which law, and how sure we are. The age check reads its minimum age and its
step-up rule from the same table. Operators add or override rows with AGEGATE_JURISDICTIONS_FILE.

The table has a version (`_version` in the file, plus a digest of the operator's changes when
there are any): every assurance record keeps the `policy_version` it was judged under.
"""

from __future__ import annotations

import copy
import hashlib
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
              "assurance", "sources"}
SIGNAL_FIELDS = {"required", "effective", "when", "law"}
ASSURANCE_FIELDS = {"self_declaration_sufficient", "accepted_methods", "estimation_challenge_age",
                    "liveness_required", "law", "effective", "sources", "uncertain", "note"}
# Age-assurance methods (API.md "Age assurance", Ofcom's list) and their category.
# `self_declaration` is never highly effective, so no row may accept it.
METHOD_CATEGORY = {
    "digital_identity": "verification", "photo_id_matching": "verification",
    "open_banking": "verification", "mobile_network_operator": "verification",
    "credit_card": "verification",
    "facial_age_estimation": "estimation", "email_age_estimation": "estimation",
    "self_declaration": "declaration",
}
METHODS = tuple(METHOD_CATEGORY)
ASSURANCE_METHODS = tuple(m for m, c in METHOD_CATEGORY.items() if c != "declaration")


class JurisdictionError(ValueError):
    """A jurisdiction table (shipped or an operator's file) that cannot be used."""


def _shipped() -> dict[str, Any]:
    text = resources.files("agegate.data").joinpath("jurisdictions.json").read_text("utf-8")
    loaded: dict[str, Any] = json.loads(text)
    return loaded


def shipped_rows() -> dict[str, dict[str, Any]]:
    """The table kept in the repository (package data)."""
    return {k: v for k, v in _shipped().items() if not k.startswith("_")}


def shipped_groups() -> dict[str, str]:
    """Country -> the group row it resolves to without a row of its own (FR -> EU)."""
    return {country: group for group, members in _shipped().get("_groups", {}).items()
            for country in members}


def _parent(code: str, groups: dict[str, str] | None = None) -> str:
    if "-" in code:
        return code.split("-", 1)[0]
    return (groups or {}).get(code, DEFAULT_ROW)


def _chain(code: str, groups: dict[str, str]) -> list[str]:
    """The rows `code` falls back on, most specific first: US-CA, US, *; FR, EU, *."""
    found = [code]
    while found[-1] != DEFAULT_ROW:
        found.append(_parent(found[-1], groups))
    return found


def _check_assurance(where: str, rule: Any) -> None:
    """The `assurance` block: complete, typed, and consistent with itself."""
    if not isinstance(rule, dict) or set(rule) != ASSURANCE_FIELDS:
        raise JurisdictionError(f"{where}: assurance needs exactly {sorted(ASSURANCE_FIELDS)}")
    for name in ("self_declaration_sufficient", "liveness_required", "uncertain"):
        if not isinstance(rule[name], bool):
            raise JurisdictionError(f"{where}: assurance.{name} must be true or false")
    methods = rule["accepted_methods"]
    if not isinstance(methods, list) or not set(methods) <= set(ASSURANCE_METHODS) \
            or len(set(methods)) != len(methods):
        raise JurisdictionError(f"{where}: assurance.accepted_methods takes each of "
                                f"{', '.join(ASSURANCE_METHODS)} at most once")
    if not rule["self_declaration_sufficient"] and not methods:
        raise JurisdictionError(f"{where}: assurance must accept a method when a declared age "
                                "is not sufficient")
    age = rule["estimation_challenge_age"]
    if age is not None and (not isinstance(age, int) or isinstance(age, bool)
                            or not 18 <= age <= 30):
        raise JurisdictionError(f"{where}: assurance.estimation_challenge_age must be null or "
                                "18..30")
    if age is None and any(METHOD_CATEGORY[m] == "estimation" for m in methods):
        raise JurisdictionError(f"{where}: assurance.estimation_challenge_age is needed when an "
                                "estimation method is accepted")
    effective = rule["effective"]
    if effective is not None and not re.fullmatch(r"\d{4}-\d{2}-\d{2}", str(effective)):
        raise JurisdictionError(f"{where}: assurance.effective must be null or YYYY-MM-DD")
    if not isinstance(rule["sources"], list) or not all(isinstance(s, str)
                                                        for s in rule["sources"]):
        raise JurisdictionError(f"{where}: assurance.sources must be a list of strings")
    for name in ("law", "note"):
        if not isinstance(rule[name], str) or not rule[name]:
            raise JurisdictionError(f"{where}: assurance.{name} must be text")


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
    _check_assurance(where, row["assurance"])


class JurisdictionTable:
    """The shipped rows, an operator's file merged over them, and AGEGATE_MINIMUM_AGES on top.

    An operator's row is merged field by field over the row it overrides (age_signal too); a new
    row starts from its parent's (US-NY from US, FR from `*`), so a file may hold just the
    fields it changes. Every row is checked at start-up: a bad file stops the service.
    """

    def __init__(self, rows: dict[str, dict[str, Any]], default_minimum_age: int = 18,
                 groups: dict[str, str] | None = None, version: str = "unversioned") -> None:
        self.rows = rows
        self.default_minimum_age = default_minimum_age
        self.groups = groups or {}
        self.version = version
        if DEFAULT_ROW not in rows:
            raise JurisdictionError("the table needs a '*' row for places without one")
        for code, row in rows.items():
            _check_row(code, row)

    @classmethod
    def build(cls, overrides_file: Path | None = None, minimum_ages: dict[str, int] | None = None,
              default_minimum_age: int = 18) -> JurisdictionTable:
        """The table the service runs with."""
        rows = shipped_rows()
        groups = shipped_groups()
        version = str(_shipped().get("_version", "unversioned"))
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
        if extra:
            # The operator's changes are part of the policy a record was judged under.
            canonical = json.dumps(extra, sort_keys=True, separators=(",", ":"), default=str)
            version += "+" + hashlib.sha256(canonical.encode()).hexdigest()[:12]
        # Countries before subdivisions, so US-NY inherits an overridden US.
        for code in sorted(extra, key=lambda c: (c != DEFAULT_ROW, "-" in c, c)):
            change = extra[code]
            if not isinstance(change, dict):
                raise JurisdictionError(f"jurisdiction {code}: a row must be a JSON object")
            base = rows.get(code)
            if base is None:
                base = next(rows[c] for c in _chain(code, groups)[1:] if c in rows)
            merged = {**copy.deepcopy(base), **change}
            for block in ("age_signal", "assurance"):
                if isinstance(change.get(block), dict) and isinstance(base.get(block), dict):
                    merged[block] = {**base[block], **change[block]}
            rows[code] = merged
        return cls(rows, default_minimum_age, groups, version)

    def resolve(self, code: str) -> tuple[str, dict[str, Any]]:
        """The most specific row for `code`: itself, its country, its group (EU), or `*`."""
        for candidate in _chain(code, self.groups):
            if candidate in self.rows:
                return candidate, self.rows[candidate]
        raise KeyError(code)  # unreachable: the '*' row is required

    def assurance_of(self, code: str) -> tuple[str, dict[str, Any]]:
        """(the row that answered, its `assurance` block) for `code` (`FR` -> `EU`)."""
        used, row = self.resolve(code.strip().upper())
        return used, row["assurance"]

    def minimum_age_of(self, code: str) -> int:
        """The minimum age where `code` is; a row's null inherits its country's, then the
        default (the platform's own 18+ terms)."""
        for candidate in _chain(code, self.groups):
            row = self.rows.get(candidate)
            if row is not None and row["minimum_age"] is not None:
                return int(row["minimum_age"])
        return self.default_minimum_age

    def known(self, code: str) -> bool:
        """A well-formed code of a real country (US, US-CA), or a group's own row (EU)."""
        code = code.strip().upper()
        if code in self.groups.values() and code in self.rows:
            return True
        return bool(CODE.match(code)) and code.split("-", 1)[0] in COUNTRIES

    def lookup(self, code: str) -> dict[str, Any]:
        """The API's answer for `code` (`GET /v1/jurisdictions/{code}`).

        A well-formed code of a real country is always answered, from the most specific row
        (US-NY from US, FR from `*`), with `resolved_from` naming that row; anything else is
        NotFound, since there is no place to describe.
        """
        code = code.strip().upper()
        if not self.known(code):
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
            "assurance": copy.deepcopy(row["assurance"]),
            "policy_version": self.version,
        }


class MinimumAgePolicy:
    """The age check's minimum age, from the jurisdiction table: the most specific row wins
    (`US-AL`, then `US`, then the default: 18 everywhere, the platform's own terms)."""

    def __init__(self, table: JurisdictionTable) -> None:
        self.table = table

    def minimum_age(self, country: str, region: str | None) -> int:
        return self.table.minimum_age_of(f"{country}-{region}" if region else country)

    def assurance(self, country: str, region: str | None) -> tuple[str, dict[str, Any]]:
        """(the place's code, its `assurance` block): whether a declared age is enough there."""
        code = f"{country}-{region}" if region else country
        return code, self.table.assurance_of(code)[1]
