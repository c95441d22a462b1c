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
from typing import Annotated, Any, Literal, get_args

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    StringConstraints,
    ValidationError,
    model_validator,
)

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
Status = Literal["in_force", "enacted", "in_litigation", "none_recorded"]
When = Literal["download", "launch", "purchase", "significant_change", "account_creation"]
# Age-assurance methods (API.md "Age assurance", Ofcom's list) by category.
Verification = Literal["digital_identity", "photo_id_matching", "open_banking",
                       "mobile_network_operator", "credit_card"]
Estimation = Literal["facial_age_estimation", "email_age_estimation"]
AssuranceMethod = Literal[Verification, Estimation]
STATUSES: tuple[str, ...] = get_args(Status)
WHEN: tuple[str, ...] = get_args(When)
# `self_declaration` is never highly effective, so no row may accept it.
METHOD_CATEGORY = {**dict.fromkeys(get_args(Verification), "verification"),
                   **dict.fromkeys(get_args(Estimation), "estimation"),
                   "self_declaration": "declaration"}
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


Text = Annotated[str, StringConstraints(min_length=1)]
Day = Annotated[str, StringConstraints(pattern=r"^\d{4}-\d{2}-\d{2}$")] | None


class _Block(BaseModel):
    """Every field given and no other, each of its JSON type as it is (no "true" for true)."""

    model_config = ConfigDict(extra="forbid", strict=True)


class AgeSignalRule(_Block):
    """A row's `age_signal`: whether an OS or app-store age signal is required, and when."""

    required: bool
    effective: Day
    when: list[When]
    law: Text  # cites the law (or says none)


class AssuranceRule(_Block):
    """A row's `assurance`: whether a declared age is enough, else which methods count."""

    self_declaration_sufficient: bool
    accepted_methods: list[AssuranceMethod]
    estimation_challenge_age: Annotated[int, Field(ge=18, le=30)] | None
    liveness_required: bool
    law: Text
    effective: Day
    sources: list[str]
    uncertain: bool
    note: Text

    @model_validator(mode="after")
    def _consistent(self) -> AssuranceRule:
        methods = self.accepted_methods
        if len(set(methods)) != len(methods):
            raise ValueError("accepted_methods lists a method twice")
        if not self.self_declaration_sufficient and not methods:
            raise ValueError("a method must be accepted when a declared age is not sufficient")
        if self.estimation_challenge_age is None and any(
                METHOD_CATEGORY[m] == "estimation" for m in methods):
            raise ValueError("estimation_challenge_age is needed when an estimation method is "
                             "accepted")
        return self


class Row(_Block):
    """One jurisdiction's row, complete (an operator's partial row is merged first)."""

    name: Text
    minimum_age: Annotated[int, Field(ge=13, le=25)] | None
    status: Status
    uncertain: bool
    note: Text
    age_signal: AgeSignalRule
    rerequest: Text
    assurance: AssuranceRule
    sources: list[str]


def _check_row(code: str, row: dict[str, Any]) -> None:
    """A complete row with the right types, or JurisdictionError naming the problem."""
    where = f"jurisdiction {code}"
    if code != DEFAULT_ROW and not CODE.match(code):
        raise JurisdictionError(f"{where}: not an ISO 3166 code such as US or US-CA")
    try:
        Row.model_validate(row)
    except ValidationError as error:
        problem = error.errors()[0]
        field = ".".join(str(part) for part in problem["loc"])
        raise JurisdictionError(f"{where}: {field + ': ' if field else ''}{problem['msg']}"
                                ) from None


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
