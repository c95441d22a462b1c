"""Every Redis key name and every retention period, in one place.

Keys that must change together share a hash tag (`{...}`) so the same code runs on a Redis
Cluster. Account keys are tagged with a keyed hash of the account id, never the raw id, so a
caller-chosen id can neither break the tag nor be read back from the keyspace.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import timedelta

PREFIX = "agegate"
DAY = 86_400


@dataclass(frozen=True)
class Retention:
    """How long each kind of record lives. Every key written gets its TTL from here."""

    retry_block_days: int = 30
    # Terminated minors are blocked until their 18th birthday where known, else for a year.
    identity_block_default_days: int = 365
    identity_block_max_days: int = 18 * 366
    # Aggregated score state is dropped a year after the last signal for the account.
    account_days: int = 365
    case_days: int = 730
    # Deletion records and the audit trail are the proof that a deletion happened.
    deletion_days: int = 6 * 365
    audit_days: int = 6 * 365
    events_days: int = 30
    parent_request_days: int = 730
    # A request whose parent never proves the mailbox is dropped soon after its code expires.
    parent_request_unverified_days: int = 7
    # The parent's free text is needed only until a reviewer decides the request.
    parent_request_details_days: int = 90
    # The outbox holds a recipient and a live code: keep it no longer than the code lives.
    outbox_days: int = 1
    export_days: int = 30
    rate_limit_days: int = 1
    content_removal_days: int = 730
    console_session_days: int = 1
    # A unit of work's applied-once marker: far longer than any client timeout and retry.
    unit_marker_seconds: int = 300
    # Platform age signals count for AGEGATE_AGE_SIGNAL_TTL_DAYS after they were observed; the
    # install-id index that revocations look accounts up by lives exactly as long.
    age_signal_days: int = 365
    # An appeal's record (status, outcome, due date); its statement lives only as long as its
    # case (case_days) and goes with the account's other data at termination.
    appeal_days: int = 730
    # The identifiers a termination blocked, kept (as keyed hashes) only so that an overturned
    # appeal can lift those blocks; no block outlives identity_block_max_days.
    terminated_identifiers_days: int = 18 * 366
    # A stream entry's applied-marker: long enough for a worker restart or a producer's retry
    # to replay the entry, short enough that markers cost one day of ingest, not a history.
    signal_entry_days: int = 1
    # Entries that could not be applied, with their error, for an operator to inspect or
    # re-publish; they may hold message text, so they go as soon as that is plausible.
    signal_dead_letter_days: int = 14
    # De-identified reviewer examples (a feature vector, a verdict, a model version, a day;
    # nothing that identifies an account): they outlive the account by design, for at most
    # this long after their day, and the store is capped (AGEGATE_FEEDBACK_MAX_EXAMPLES).
    feedback_example_days: int = 730

    def seconds(self, kind: str) -> int:
        """TTL in seconds for a kind of record named in this table."""
        if hasattr(self, f"{kind}_seconds"):
            return int(getattr(self, f"{kind}_seconds"))
        return int(getattr(self, f"{kind}_days")) * DAY

    def delta(self, kind: str) -> timedelta:
        """The same period as a timedelta."""
        return timedelta(seconds=self.seconds(kind))


def hash_tag(*names: str) -> str | None:
    """The hash tag (`{...}`) of the first key that has one, as Redis Cluster reads it."""
    for name in names:
        start = name.find("{")
        end = name.find("}", start + 1)
        if start >= 0 and end > start + 1:
            return name[start + 1:end]
    return None


def unit_marker(tag: str | None, token: str) -> str:
    """Marks one unit of work as applied (storage/unit.py); in the slot of what it writes."""
    return f"{PREFIX}:uow:{{{tag}}}:{token}" if tag is not None else f"{PREFIX}:uow:{token}"


def tag(account_hash: str) -> str:
    """The hash-tagged prefix of every key that belongs to one account."""
    return f"{PREFIX}:acct:{{{account_hash}}}"


# -- age checks ----------------------------------------------------------------------------
def retry_block(kind: str, identifier_hash: str) -> str:
    return f"{PREFIX}:retry:{kind}:{identifier_hash}"


def identity_block(kind: str, identifier_hash: str) -> str:
    return f"{PREFIX}:block:{kind}:{identifier_hash}"


# -- accounts ------------------------------------------------------------------------------
def account(account_hash: str) -> str:
    """Hash: account_id, status, score, band, case_id, updated_at."""
    return f"{tag(account_hash)}:meta"


def account_state(account_hash: str) -> str:
    """The model's bounded aggregate (JSON); never raw text."""
    return f"{tag(account_hash)}:state"


def account_identifiers(account_hash: str) -> str:
    """Set of `kind:hash` identifiers seen with this account in age checks (for blocks)."""
    return f"{tag(account_hash)}:identifiers"


def account_keys(account_hash: str) -> list[str]:
    """Everything this service holds that termination must delete for an account."""
    return [account(account_hash), account_state(account_hash), account_identifiers(account_hash),
            account_cases(account_hash), account_open_case(account_hash),
            content_removals(account_hash), age_signals(account_hash),
            account_open_age_case(account_hash), appeal_statements(account_hash),
            account_open_appeal(account_hash)]


def account_applied(account_hash: str, entry_hash: str) -> str:
    """Marker that one signal-stream entry was folded into this account (written with it)."""
    return f"{tag(account_hash)}:seen:{entry_hash}"


def account_cases(account_hash: str) -> str:
    """Set of every review case id opened on this account (termination deletes them all)."""
    return f"{tag(account_hash)}:cases"


def account_open_case(account_hash: str) -> str:
    """The account's one open classifier/report/content_removal case id (written atomically)."""
    return f"{tag(account_hash)}:open_case"


# -- review queue --------------------------------------------------------------------------
# The queue is global (one sorted set across accounts), so its keys carry no account tag.
CASE_PREFIX = f"{PREFIX}:case:"
REVIEW_OPEN = f"{PREFIX}:review:open"
REVIEW_OPEN_KIND_PREFIX = f"{PREFIX}:review:open:"
REVIEW_CLAIMED = f"{PREFIX}:review:claimed"
REVIEW_DECIDED = f"{PREFIX}:review:decided"


def case(case_id: str) -> str:
    """Hash: one review case."""
    return f"{CASE_PREFIX}{case_id}"


def review_open(kind: str | None = None) -> str:
    """Sorted set of open case ids by queue position (lowest first); one per kind plus all."""
    return f"{REVIEW_OPEN_KIND_PREFIX}{kind}" if kind else REVIEW_OPEN


# -- deletions -----------------------------------------------------------------------------
DELETIONS_PENDING = f"{PREFIX}:deletions:pending"
DELETIONS_ALL = f"{PREFIX}:deletions:all"


def deletion(deletion_id: str) -> str:
    """Hash: one deletion record (the proof of a termination)."""
    return f"{PREFIX}:deletion:{deletion_id}"


def account_deletion(account_hash: str) -> str:
    """The account's deletion id: makes termination idempotent and marks the account terminated."""
    return f"{PREFIX}:deletion:acct:{account_hash}"


# -- audit and events ----------------------------------------------------------------------
AUDIT_STREAM = f"{PREFIX}:audit"
# Hash: writer chain id -> the last hash appended to that chain.
AUDIT_HEADS = f"{PREFIX}:audit:heads"


def audit_index(account_hash: str) -> str:
    """Sorted set of the audit entry ids that concern one account."""
    return f"{PREFIX}:audit:acct:{account_hash}"


# -- reviewer console ----------------------------------------------------------------------
def console_session(session_id: str) -> str:
    """Hash: name, role, issued_at, expires_at of one signed-in console session."""
    return f"{PREFIX}:console:session:{session_id}"


def console_login_failures(client_hash: str) -> str:
    """Counter of failed console sign-ins from one (hashed) client address."""
    return f"{PREFIX}:console:login-failures:{client_hash}"


# -- parent requests -----------------------------------------------------------------------
def parent_request(request_id: str) -> str:
    """Hash: status, type, keyed hashes, hashed status token and code, timestamps, outcome."""
    return f"{PREFIX}:preq:{{{request_id}}}:meta"


def parent_request_details(request_id: str) -> str:
    """The parent's bounded free text, for the reviewer only; dropped once decided."""
    return f"{PREFIX}:preq:{{{request_id}}}:details"


def parent_request_export(request_id: str) -> str:
    """JSON export for a fulfilled access request, read with the status token."""
    return f"{PREFIX}:preq:{{{request_id}}}:export"


def parent_requests_waiting(account_hash: str) -> str:
    """Set of the account's deletion and access requests waiting for its minority to be
    established (age verification); kept apart from account_keys, so termination keeps it."""
    return f"{tag(account_hash)}:preq-waiting"


# Sorted set of verified, undecided request ids scored by their due time (overdue listing).
PARENT_REQUESTS_OPEN = f"{PREFIX}:preq:open"
# List of mails awaiting an admin when no SMTP server is configured.
OUTBOX = f"{PREFIX}:outbox"


def rate_limit(scope: str, client_hash: str, window: int) -> str:
    """Fixed-window counter for one client address (keyed hash) in one window."""
    return f"{PREFIX}:rl:{scope}:{client_hash}:{window}"


# -- content removals ----------------------------------------------------------------------
def content_removals(account_hash: str) -> str:
    """Set of keyed hashes of content ids whose removal this account has requested."""
    return f"{tag(account_hash)}:removals"


# -- platform age signals ------------------------------------------------------------------
def age_signals(account_hash: str) -> str:
    """Sorted set of the account's age signals (JSON, with provenance) scored by expiry time."""
    return f"{tag(account_hash)}:age_signals"


def account_open_age_case(account_hash: str) -> str:
    """The account's one open (or awaiting-verification) `age_signal` case id."""
    return f"{tag(account_hash)}:open_age_case"


def open_case_pointer(account_hash: str, kind: str) -> str:
    """The pointer to the account's one open case of `kind`: age signals keep their own."""
    return account_open_age_case(account_hash) if kind == "age_signal" \
        else account_open_case(account_hash)


def install_accounts(install_hash: str) -> str:
    """Set of account ids seen with one (keyed-hashed) app install id, for revocations.

    Global: tagged by the install's own hash, not an account's (one install may serve several
    accounts), and written in the same MULTI as the account's signal.
    """
    return f"{PREFIX}:install:{{{install_hash}}}"


# -- appeals -------------------------------------------------------------------------------
def appeal(appeal_id: str) -> str:
    """Hash: appeal_id, account_id, case_id, status, outcome, due_at, created_at, decided_at."""
    return f"{PREFIX}:appeal:{appeal_id}"


def account_open_appeal(account_hash: str) -> str:
    """The account's one open appeal id (a second appeal while it is open is a 409)."""
    return f"{tag(account_hash)}:open_appeal"


def appeal_statements(account_hash: str) -> str:
    """Hash: case id -> the member's statement, for the reviewer; deleted with the case."""
    return f"{tag(account_hash)}:appeal_statements"


def terminated_identifiers(account_hash: str) -> str:
    """Set of `kind:hash` identifiers a termination blocked (so an appeal can lift them)."""
    return f"{tag(account_hash)}:terminated_identifiers"


# -- signal stream -------------------------------------------------------------------------
def signals_dead(stream: str) -> str:
    """The dead-letter stream beside a signal stream: entries that could not be applied."""
    return f"{stream}:dead"


# -- model feedback ------------------------------------------------------------------------
# Global and on purpose: the examples belong to no account (no account tag, no id, no hash).
# Both keys share one hash tag so that adding an example and its count is one script.
FEEDBACK_TAG = "{feedback}"


def feedback_examples() -> str:
    """Sorted set of de-identified examples scored by their day (date ordinal); within a day
    members sort by a random prefix, so the order says nothing about when each was taken."""
    return f"{PREFIX}:feedback:{FEEDBACK_TAG}:examples"


def feedback_counts() -> str:
    """Hash: verdict -> number of stored examples (kept with the set by the same script)."""
    return f"{PREFIX}:feedback:{FEEDBACK_TAG}:counts"
