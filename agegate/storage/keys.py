"""Every Redis key name and every retention period, in one place.

Redis Cluster: keys that change together share a hash tag (`{...}`) and so one hash slot. Every
account belongs to one of SHARDS shards (`shard_of` its keyed hash); ALL of its keys and the
shard's copies of what spans accounts (the review queue, the audit stream and chain heads, the
deletion and parent-request indexes, the outbox) carry the shard's tag `{sN}`, so a unit of
work on one account and its shard's indexes is single-slot. Readers fan out over the shards.
Records with an id of their own (cases, deletions, parent requests) carry their shard in the id
(`case_s7_...`), so the id alone names the slot. Identifier blocks are tagged by the
identifier's own hash and written through the outbox (storage/outbox.py), as are events for the
contract's one events stream. On a single Redis the tags are harmless.

Keyspaces (storage/keyspace.py): every name starts with `prefix()` and every configured stream
goes through `stream()`, both chosen once per request from the token, so a test token's
writes land under `agegate-test:` (and `<events stream>:test`) whatever service wrote them;
`Retention.seconds` caps every TTL at 24 hours there. A new key function must use `prefix()`.
"""

from __future__ import annotations

import secrets
from dataclasses import dataclass
from datetime import timedelta

from agegate.storage import keyspace

DAY = 86_400


def prefix() -> str:
    """The first segment of every key: `agegate`, or `agegate-test` for a test token's request
    (storage/keyspace.py). Every key name below starts with it; new ones must too."""
    return keyspace.current().prefix


def stream(name: str) -> str:
    """The current keyspace's copy of a stream the configuration names (`<name>:test`)."""
    return keyspace.current().stream(name)


@dataclass(frozen=True)
class Retention:
    """How long each kind of record lives. Every key written gets its TTL from here."""

    retry_block_days: int = 30
    # Terminated minors are blocked until their 18th birthday where known, else for a year.
    identity_block_default_days: int = 365
    identity_block_max_days: int = 18 * 366
    # Aggregated score state is dropped a year after the last signal for the account.
    account_days: int = 365
    # ... but an account's meta hash keeps what must not lapse with an idle year for this long
    # after its last change: a restriction pending age verification, a parent's objection
    # (processing stopped), verified-adult evidence (a verification, an ID-checked signal).
    # Six years, as the deletion records and the audit trail that prove them.
    account_standing_days: int = 6 * 365
    case_days: int = 730
    # Deletion records and the audit trail are the proof that a deletion happened.
    deletion_days: int = 6 * 365
    audit_days: int = 6 * 365
    # Events older than this are trimmed from the events stream (XADD MINID on every event, and
    # the webhook job's XTRIM MINID once a minute). The live stream itself has no TTL, by
    # design: it carries consumer groups (agegate-webhooks, each downstream system's), and an
    # expiry after a quiet month would delete them with it. Test mode's stream expires.
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
    # Steps a unit of work left for outside its slot are applied within seconds; the outbox
    # stream outlives a worker outage of days.
    outbox_steps_days: int = 7
    # The ids of outbox entries already relayed to an events stream, kept beside it: as long as
    # an entry can wait in an outbox (a step stays there until its writes are confirmed), so a
    # late drain of a relayed entry never emits its event twice.
    events_relayed_days: int = 7
    # A unit of work's applied-once marker: only the call that wrote it ever reads it, within
    # its retries (socket timeout 5 s, at most 4 connections): a minute is ample, and keeps the
    # markers of a busy minute (not hours) in memory.
    unit_marker_seconds: int = 60
    # Platform age signals count for AGEGATE_AGE_SIGNAL_TTL_DAYS after they were observed; the
    # install-id index that revocations look accounts up by lives exactly as long.
    age_signal_days: int = 365
    # An appeal's record (status, outcome, due date); its statement lives only as long as its
    # case (case_days) and goes with the account's other data at termination.
    appeal_days: int = 730
    # The identifiers a termination blocked, kept (as keyed hashes) only so that an overturned
    # appeal can lift those blocks; no block outlives identity_block_max_days.
    terminated_identifiers_days: int = 18 * 366
    # A webhook lives until an admin deletes it; the TTL (refreshed on every change) only
    # guarantees that nothing lives forever.
    webhook_days: int = 3650
    # A delivery is retried for 24 hours, then recorded as failed; its record outlives that
    # only briefly. The delivery log (recent attempts, no event bodies) is kept a month.
    webhook_delivery_days: int = 2
    webhook_log_days: int = 30
    # A stream entry's applied-marker: long enough for a worker restart or a producer's retry
    # to replay the entry, short enough that markers cost one day of ingest, not a history.
    signal_entry_days: int = 1
    # ... and once an entry without the platform's id is settled: only a worker that took it
    # over while its first worker stalled (past the claim time) can still apply it again.
    settled_signal_entry_seconds: int = 600
    # A create's Idempotency-Key (webhooks, assurance results: storage/idempotency.py), with
    # its request body's keyed hash and the id of what it created: as long as a signal
    # batch's key (signal_entry_days), the window in which a caller retries.
    idempotency_days: int = 1
    # Entries that could not be applied, with their error, for an operator to inspect or
    # re-publish; they may hold message text, so they go as soon as that is plausible.
    signal_dead_letter_days: int = 14
    # De-identified reviewer examples (a feature vector, a verdict, a model version, a day;
    # nothing that identifies an account): they outlive the account by design, for at most
    # this long after their day, and the store is capped (AGEGATE_FEEDBACK_MAX_EXAMPLES).
    feedback_example_days: int = 730
    # Age-assurance records (the evidence of the steps taken, for a regulator): kept
    # AGEGATE_ASSURANCE_RETENTION_DAYS after they were recorded, also after the account is
    # terminated, since they hold nothing personal beyond a keyed account reference.
    assurance_days: int = 730
    # Digital credentials (API.md): a request is answered within 5 minutes or never; an
    # over-18 result lets the same session's or account's age check through for 30 minutes,
    # and an age check answered `verify` remembers its identifiers (keyed hashes) for as long,
    # so that a not-over-18 answer can block them.
    credential_request_seconds: int = 300
    credential_pass_seconds: int = 1800
    verify_session_seconds: int = 1800

    def seconds(self, kind: str) -> int:
        """TTL in seconds for a kind of record named in this table."""
        if hasattr(self, f"{kind}_seconds"):
            seconds = int(getattr(self, f"{kind}_seconds"))
        else:
            seconds = int(getattr(self, f"{kind}_days")) * DAY
        # The one place test mode's 24-hour ceiling is applied (storage/keyspace.py).
        return keyspace.current().ttl(seconds)

    def delta(self, kind: str) -> timedelta:
        """The same period as a timedelta."""
        return timedelta(seconds=self.seconds(kind))


# Fixed for the life of a deployment: changing it moves every account to another shard.
SHARDS = 64


def shard_of(hex_hash: str) -> int:
    """The shard of a keyed hash (hex): its first 32 bits modulo SHARDS."""
    return int(hex_hash[:8], 16) % SHARDS


def shard_tag(shard: int) -> str:
    """The hash tag, braces included, every key of one shard carries."""
    return f"{{s{shard}}}"


def shard_of_tag(tag: str) -> int:
    """The shard a `shard_tag` (without braces, as hash_tag returns it) names."""
    if not (tag.startswith("s") and tag[1:].isdigit() and int(tag[1:]) < SHARDS):
        raise ValueError(f"not a shard tag: {tag!r}")
    return int(tag[1:])


def all_shards() -> range:
    """Every shard, for readers that fan out."""
    return range(SHARDS)


def sharded_id(prefix: str, shard: int, token: str) -> str:
    """An id that names its shard, e.g. `case_s7_3Hq...`."""
    return f"{prefix}_s{shard}_{token}"


def new_sharded_id(prefix: str, shard: int) -> str:
    """A new unguessable id that names its shard."""
    return sharded_id(prefix, shard, secrets.token_urlsafe(12))


def shard_of_id(identifier: str) -> int | None:
    """The shard a `sharded_id` names; None for anything else (e.g. a mistyped id)."""
    parts = identifier.split("_", 2)
    if len(parts) == 3 and parts[1][:1] == "s" and parts[1][1:].isdigit():
        shard = int(parts[1][1:])
        if shard < SHARDS:
            return shard
    return None


def _id_tag(identifier: str) -> str:
    # An id that names no shard gets a tag of its own: it names nothing stored.
    shard = shard_of_id(identifier)
    return shard_tag(shard) if shard is not None else "{unsharded}"


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
    return f"{prefix()}:uow:{{{tag}}}:{token}" if tag is not None else f"{prefix()}:uow:{token}"


def tag(account_hash: str) -> str:
    """The prefix of every key that belongs to one account (its shard's tag, then its hash)."""
    return f"{prefix()}:acct:{shard_tag(shard_of(account_hash))}:{account_hash}"


def outbox(shard: int) -> str:
    """Stream of steps that leave the shard's slot (events, identifier blocks, audit index
    entries of another shard's account), applied after the unit and by `agegate worker`."""
    return f"{prefix()}:shard-outbox:{shard_tag(shard)}"


# -- age checks ----------------------------------------------------------------------------
def retry_block(kind: str, identifier_hash: str) -> str:
    return f"{prefix()}:retry:{shard_tag(shard_of(identifier_hash))}:{kind}:{identifier_hash}"


def identity_block(kind: str, identifier_hash: str) -> str:
    return f"{prefix()}:block:{shard_tag(shard_of(identifier_hash))}:{kind}:{identifier_hash}"


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


def idempotency(shard: int, key_hash: str) -> str:
    """A create's Idempotency-Key (a keyed hash of caller, route and key), in the shard of the
    unit of work that applied it (storage/idempotency.py)."""
    return f"{prefix()}:idem:{shard_tag(shard)}:{key_hash}"


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
# One copy of the queue per shard; a case lives in its account's shard.
def case_prefix(shard: int) -> str:
    """What a case's key is, less its id (the claim scripts build keys from it)."""
    return f"{prefix()}:case:{shard_tag(shard)}:"


def case(case_id: str) -> str:
    """Hash: one review case."""
    return f"{prefix()}:case:{_id_tag(case_id)}:{case_id}"


def case_detail(case_id: str) -> str:
    """String: a case's top signals and history (JSON), beside its hash so the hash stays
    compact (the claim scripts build it as the case's key + ':detail')."""
    return f"{case(case_id)}:detail"


def review_open(shard: int, kind: str | None = None) -> str:
    """Sorted set of open case ids by queue position (lowest first); one per kind plus all."""
    if kind:
        return review_open_kind_prefix(shard) + kind
    return f"{prefix()}:review:{shard_tag(shard)}:open"


def review_open_kind_prefix(shard: int) -> str:
    return f"{prefix()}:review:{shard_tag(shard)}:open:"


def review_claimed(shard: int) -> str:
    """Sorted set of claimed case ids by lease end."""
    return f"{prefix()}:review:{shard_tag(shard)}:claimed"


def review_decided(shard: int) -> str:
    """Sorted set of decided case ids by decision time."""
    return f"{prefix()}:review:{shard_tag(shard)}:decided"


# -- deletions -----------------------------------------------------------------------------
def deletions_pending(shard: int) -> str:
    """Sorted set of pending deletion ids by due time."""
    return f"{prefix()}:deletions:{shard_tag(shard)}:pending"


def deletions_all(shard: int) -> str:
    """Sorted set of every deletion id by request time."""
    return f"{prefix()}:deletions:{shard_tag(shard)}:all"


def deletion(deletion_id: str) -> str:
    """Hash: one deletion record (the proof of a termination)."""
    return f"{prefix()}:deletion:{_id_tag(deletion_id)}:{deletion_id}"


def account_deletion(account_hash: str) -> str:
    """The account's deletion id: makes termination idempotent and marks the account terminated."""
    return f"{tag(account_hash)}:deletion"


# -- audit and events ----------------------------------------------------------------------
def audit_stream(shard: int) -> str:
    """The shard's audit entries (each writer process keeps one chain per shard)."""
    return f"{prefix()}:audit:{shard_tag(shard)}"


def audit_heads(shard: int) -> str:
    """Hash: writer chain id -> the last hash appended to that chain, for one shard."""
    return f"{prefix()}:audit:{shard_tag(shard)}:heads"


def audit_index(account_hash: str) -> str:
    """Sorted set of references (`shard:stream id`) to one account's audit entries, by time."""
    return f"{tag(account_hash)}:audit"


def events_relayed(stream: str) -> str:
    """Outbox entries already relayed to the events stream (same slot as the stream)."""
    return f"{{{hash_tag(stream) or stream}}}:relayed"


# -- reviewer console ----------------------------------------------------------------------
def console_session(session_id: str) -> str:
    """Hash: name, role, issued_at, expires_at of one signed-in console session."""
    return f"{prefix()}:console:session:{session_id}"


def console_login_failures(client_hash: str) -> str:
    """Counter of failed console sign-ins from one (hashed) client address."""
    return f"{prefix()}:console:login-failures:{client_hash}"


# -- parent requests -----------------------------------------------------------------------
# A request lives in the shard its id names (its child's, when the parent gave an account id).
def parent_request(request_id: str) -> str:
    """Hash: status, type, keyed hashes, hashed status token and code, timestamps, outcome."""
    return f"{prefix()}:preq:{_id_tag(request_id)}:{request_id}:meta"


def parent_request_details(request_id: str) -> str:
    """The parent's bounded free text, for the reviewer only; dropped once decided."""
    return f"{prefix()}:preq:{_id_tag(request_id)}:{request_id}:details"


def parent_request_export(request_id: str) -> str:
    """JSON export for a fulfilled access request, read with the status token."""
    return f"{prefix()}:preq:{_id_tag(request_id)}:{request_id}:export"


def parent_requests_open(shard: int) -> str:
    """Sorted set of verified, undecided request ids scored by their due time."""
    return f"{prefix()}:preq:{shard_tag(shard)}:open"


def parent_requests_waiting(account_hash: str) -> str:
    """Set of the account's deletion and access requests waiting for its minority to be
    established (age verification); kept apart from account_keys, so termination keeps it."""
    return f"{tag(account_hash)}:preq-waiting"


# Mails awaiting an admin when no SMTP server is configured: each its own key, expiring on its
# own day, and a newest-first list of their ids (ids only: it may outlive a mail). One hash tag
# for all of them: a mail and the list change in one transaction (a fallback, low volume).
def outbox_index() -> str:
    """List of the queued mails' ids, newest first."""
    return f"{prefix()}:outbox:{{mail}}:index"


def outbox_message(mail_id: str) -> str:
    """One queued mail (JSON: recipient, subject, body with the code)."""
    return f"{prefix()}:outbox:{{mail}}:{mail_id}"


# Flask-Limiter's moving windows (its Redis storage sets each key's expiry to its window; the
# client address in them is a keyed hash). Fixed when the app starts, so always live: only
# public routes (parents' requests) are rate-limited, and a public request is never a test.
RATE_LIMIT_PREFIX = f"{keyspace.LIVE.prefix}:rl"


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
    """Sorted set of the account ids last seen with one (keyed-hashed) app install id, by
    time, capped (storage/age_signals.py): what revocations look accounts up by.

    Global: tagged by the install's own hash, not an account's (one install may serve several
    accounts), and written in the same MULTI as the account's signal.
    """
    return f"{prefix()}:install:{{{install_hash}}}"


# -- appeals -------------------------------------------------------------------------------
def appeal(appeal_id: str) -> str:
    """Hash: appeal_id, account_id, case_id, status, outcome, due_at, created_at, decided_at."""
    return f"{prefix()}:appeal:{_id_tag(appeal_id)}:{appeal_id}"


def account_open_appeal(account_hash: str) -> str:
    """The account's one open appeal id (a second appeal while it is open is a 409)."""
    return f"{tag(account_hash)}:open_appeal"


def appeal_statements(account_hash: str) -> str:
    """Hash: case id -> the member's statement, for the reviewer; deleted with the case."""
    return f"{tag(account_hash)}:appeal_statements"


def terminated_identifiers(account_hash: str) -> str:
    """Set of `kind:hash` identifiers a termination blocked (so an appeal can lift them)."""
    return f"{tag(account_hash)}:terminated_identifiers"


# -- webhooks ------------------------------------------------------------------------------
# The registry of webhooks, the delivery queue (ids by next attempt time), deliveries and their
# logs all live in one shard (an operator's few webhooks; each unit that changes them, and the
# audit entry that records it, is then one slot).
# Test mode has a registry and a queue of its own (its keyspace), fed from its own events stream.
WEBHOOK_SHARD = 0
WEBHOOK_GROUP = "agegate-webhooks"


def webhooks_index() -> str:
    """Set of registered webhook ids."""
    return f"{prefix()}:webhooks:{shard_tag(WEBHOOK_SHARD)}"


def webhook_due() -> str:
    """Sorted set of delivery ids by next attempt time."""
    return f"{prefix()}:webhooks:{shard_tag(WEBHOOK_SHARD)}:due"


def webhook(webhook_id: str) -> str:
    """Hash: url, events, created_at, sealed secrets (with their end of life while rotating)."""
    return f"{prefix()}:webhook:{shard_tag(WEBHOOK_SHARD)}:{webhook_id}"


def webhook_log(webhook_id: str) -> str:
    """List of the webhook's recent delivery attempts (JSON; newest first; bounded)."""
    return f"{prefix()}:webhook:{shard_tag(WEBHOOK_SHARD)}:{webhook_id}:log"


def webhook_delivery(delivery_id: str) -> str:
    """Hash: one event's delivery to one webhook (body, attempts, status)."""
    return f"{prefix()}:whd:{shard_tag(WEBHOOK_SHARD)}:{delivery_id}"


def webhook_cursor() -> str:
    """The newest events-stream id fanned out to deliveries: where the `agegate-webhooks`
    group is created again if it vanished (NOGROUP), so nothing in between is skipped."""
    return f"{prefix()}:webhooks:{shard_tag(WEBHOOK_SHARD)}:cursor"


# -- signal stream -------------------------------------------------------------------------
# The signal stream itself (AGEGATE_SIGNALS_STREAM) is the platform's input queue and gets no
# TTL: an expiry would drop the consumer group with it. Its entries carry message text, so each
# one is deleted as soon as it is applied (storage/signal_stream.py, settle()).
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
    return f"{prefix()}:feedback:{FEEDBACK_TAG}:examples"


def feedback_counts() -> str:
    """Hash: verdict -> number of stored examples (kept with the set by the same script)."""
    return f"{prefix()}:feedback:{FEEDBACK_TAG}:counts"


# -- digital credentials -------------------------------------------------------------------
def credential_request(request_id: str) -> str:
    """String (JSON): origin, nonce, account id, keyed session hash of one open request;
    taken (GETDEL) by its one answer."""
    return f"{prefix()}:credreq:{_id_tag(request_id)}:{request_id}"


def credential_pass(kind: str, identifier_hash: str) -> str:
    """Marker: this session's or account's wallet proved over 18 (an age check is `allow`)."""
    return f"{prefix()}:credpass:{shard_tag(shard_of(identifier_hash))}:{kind}:{identifier_hash}"


def verify_session(session_hash: str) -> str:
    """Sorted set of `kind:hash` identifiers (device, email) of age checks answered `verify`
    in one session, by time: what a not-over-18 credential answer in that session blocks."""
    return f"{prefix()}:verify-session:{shard_tag(shard_of(session_hash))}:{session_hash}"


# -- age-assurance records -----------------------------------------------------------------
# A record lives in its account's shard (its id names it: `asr_s7_...`), beside the shard's
# index by time (the regulator's export) and the account's own list of record ids. None of the
# three is in account_keys: termination keeps them (they hold only keyed references).
def assurance_record(assurance_id: str) -> str:
    """String: one assurance record (JSON; no account id, document number, image or age)."""
    return f"{prefix()}:assurance:{_id_tag(assurance_id)}:{assurance_id}"


def assurance_index(shard: int) -> str:
    """Sorted set of the shard's assurance record ids scored by the time each was recorded."""
    return f"{prefix()}:assurance:{shard_tag(shard)}:index"


def account_assurance(account_hash: str) -> str:
    """Sorted set of one account's assurance record ids by time (outlives the account)."""
    return f"{tag(account_hash)}:assurance"
