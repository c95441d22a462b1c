"""Retry blocks (after an under-age answer) and identity blocks (terminated minors).

Only keyed hashes of identifiers are ever written; a key's existence is the whole record.
An identifier is a `(kind, keyed_hash)` pair: kind is account, device, email or session.
"""

from __future__ import annotations

import time
from collections.abc import Sequence

import redis

from agegate.storage import keys
from agegate.storage.audit import APPEND_FUNCTION, MAX_ACCOUNT_ENTRIES, PreparedAlternatives
from agegate.storage.keys import Retention
from agegate.storage.scripts import DirectScript

Identifier = tuple[str, str]

# An account keeps at most this many identifiers seen in its age checks (bounded state).
MAX_LINKED_IDENTIFIERS = 32

# Set a block, but never shorten one that already runs longer (e.g. until an 18th birthday).
_EXTEND_BLOCK = """
local ttl = tonumber(ARGV[1])
for _, key in ipairs(KEYS) do
  if redis.call('TTL', key) < ttl then redis.call('SET', key, '1', 'EX', ttl) end
end
return #KEYS
"""


# KEYS: audit stream, audit heads, audit index or "", link key or "", then N identity-block
# keys and N retry-block keys. ARGV: N, under_age, retry TTL, link TTL, link cap, now, the audit
# entry's shared head and tail, three (details, hash) pairs for the outcomes 1..3, MINID, audit
# TTL, chain id, index cap, link members. Only the chosen outcome's entry is assembled.
_CHECK_AND_RECORD = APPEND_FUNCTION + """
local n = tonumber(ARGV[1])
local choice = 3
if n > 0 then
  -- One EXISTS per kind of block: it counts how many of the keys exist.
  if redis.call('EXISTS', unpack(KEYS, 5, 4 + n)) > 0 then
    choice = 1
  elseif redis.call('EXISTS', unpack(KEYS, 5 + n, 4 + 2 * n)) > 0 then
    choice = 2
  end
end
if choice == 3 and ARGV[2] == '1' then
  for i = 1, n do redis.call('SET', KEYS[4 + n + i], '1', 'EX', ARGV[3]) end
end
if KEYS[4] ~= '' then
  local members = {}
  for i = 19, #ARGV do
    members[#members + 1] = ARGV[6]
    members[#members + 1] = ARGV[i]
  end
  redis.call('ZADD', KEYS[4], unpack(members))
  if redis.call('ZCARD', KEYS[4]) > tonumber(ARGV[5]) then
    redis.call('ZREMRANGEBYRANK', KEYS[4], 0, -(tonumber(ARGV[5]) + 1))
  end
  redis.call('EXPIRE', KEYS[4], ARGV[4])
end
local entry = ARGV[7] .. ARGV[7 + 2 * choice] .. ',"hash":"' .. ARGV[8 + 2 * choice] .. '"'
  .. ARGV[8]
audit_append(KEYS[1], KEYS[2], KEYS[3], entry, ARGV[15], ARGV[16], ARGV[17], ARGV[8 + 2 * choice],
             ARGV[18])
return choice
"""


class IdentityStore:
    """Reads are pipelined in one round trip; writes join a caller's pipeline."""

    def __init__(self, client: redis.Redis, retention: Retention) -> None:
        self.r = client
        self.retention = retention
        self._extend_block = client.register_script(_EXTEND_BLOCK)
        self._check_and_record = DirectScript(client, _CHECK_AND_RECORD)

    def check_and_record(
        self,
        identifiers: Sequence[Identifier],
        *,
        under_age: bool,
        account_hash: str | None,
        outcomes: PreparedAlternatives,
    ) -> int:
        """The age check's storage step, atomic and in one round trip: returns 1 when an
        identifier is identity-blocked, 2 when one is retry-blocked, else 3 (and then writes
        retry blocks if `under_age`); links the identifiers to the account and appends
        outcome `choice - 1` of the three `outcomes` to the audit trail."""
        if len(outcomes.details) != 3:
            raise ValueError("the age check script takes exactly three outcomes")
        linked = [f"{kind}:{digest}" for kind, digest in identifiers if kind != "account"]
        link_key = keys.account_identifiers(account_hash) if account_hash and linked else ""
        script_keys = [keys.AUDIT_STREAM, keys.AUDIT_HEADS, outcomes.index, link_key,
                       *[keys.identity_block(k, h) for k, h in identifiers],
                       *[keys.retry_block(k, h) for k, h in identifiers]]
        details, hashes = outcomes.details, outcomes.hashes
        args: list[str | int | float] = [
            len(identifiers), "1" if under_age else "0", self.retention.seconds("retry_block"),
            self.retention.seconds("account"), MAX_LINKED_IDENTIFIERS, time.time(),
            outcomes.head, outcomes.tail, details[0], hashes[0], details[1], hashes[1],
            details[2], hashes[2], outcomes.min_id, outcomes.ttl, outcomes.chain_id,
            MAX_ACCOUNT_ENTRIES, *linked,
        ]
        return int(self._check_and_record(keys=script_keys, args=args))

    def queue_identity_blocks(
        self, pipe: redis.client.Pipeline, identifiers: Sequence[Identifier], ttl_seconds: int
    ) -> None:
        """Block a terminated minor's identifiers for `ttl_seconds` (capped by the table)."""
        if not identifiers:
            return
        ttl = max(1, min(ttl_seconds, self.retention.seconds("identity_block_max")))
        block_keys = [keys.identity_block(k, h) for k, h in identifiers]
        self._extend_block(keys=block_keys, args=[ttl], client=pipe)

    def linked(self, account_hash: str) -> list[Identifier]:
        """The identifiers an account used in its age checks."""
        members = self.r.zrange(keys.account_identifiers(account_hash), 0, -1)
        return [(kind, digest) for kind, _, digest in (m.partition(":") for m in members)]
