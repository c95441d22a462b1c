"""Server-side scripts run by EVALSHA: the one way the stores call their Lua scripts outside a
MULTI (inside one, a unit of work sends EVAL, which cannot be refused with NOSCRIPT).

A script is built once per process (its SHA1 computed once). Calls go out as `EVALSHA` in a
pipeline, many in one round trip (`Calls`: one per cluster node; `replicas.confirmed`: one
node, with its WAIT); a reply of NOSCRIPT (a node that never ran it, a restarted or
failed-over Redis, a `SCRIPT FLUSH`) loads the script there and sends the calls once more. A
call refused with NOSCRIPT did nothing, so that is safe. Unlike redis-py's `register_script`,
no SCRIPT EXISTS round trip precedes a pipeline.
"""

from __future__ import annotations

import hashlib
from typing import Any

import redis
from redis.exceptions import NoScriptError


class Script:
    """One Lua script: its source, its SHA1, and loading it."""

    def __init__(self, source: str) -> None:
        self.source = source
        self.sha = hashlib.sha1(source.encode()).hexdigest()  # noqa: S324 - Redis's own name

    def load(self, client: Any) -> None:
        """SCRIPT LOAD on the client's server (every primary of a cluster)."""
        client.script_load(self.source)

    def queue(self, pipe: Any, keys: list[str], args: list[Any]) -> None:
        """Queue one call on a pipeline to one node (`replicas.node_pipeline`)."""
        pipe.execute_command("EVALSHA", self.sha, len(keys), *keys, *args)


class Calls:
    """Commands and script calls queued for one pipeline; `execute()` sends them together."""

    def __init__(self, client: redis.Redis) -> None:
        self.client: Any = client
        self.calls: list[tuple[Script | None, tuple[Any, ...]]] = []

    def __len__(self) -> int:
        return len(self.calls)

    def script(self, script: Script, keys: list[str], args: list[Any]) -> int:
        """Queue one script call; returns its place in the replies."""
        self.calls.append((script, (len(keys), *keys, *args)))
        return len(self.calls) - 1

    def command(self, *args: Any) -> int:
        """Queue one plain command (e.g. "DEL", key); returns its place in the replies."""
        self.calls.append((None, args))
        return len(self.calls) - 1

    def execute(self) -> list[Any]:
        """Send every call in one pipeline; replies in order, an error reply as the exception
        itself (callers decide). Calls refused with NOSCRIPT are sent again after loading."""
        replies = self._send(list(range(len(self.calls))))
        missing = [i for i, reply in enumerate(replies) if isinstance(reply, NoScriptError)]
        if missing:
            loaded: set[str] = set()
            for i in missing:
                script = self.calls[i][0]
                if script is not None and script.sha not in loaded:
                    script.load(self.client)
                    loaded.add(script.sha)
            for i, reply in zip(missing, self._send(missing), strict=True):
                replies[i] = reply
        return replies

    def _send(self, which: list[int]) -> list[Any]:
        pipe = self.client.pipeline(transaction=False)
        # redis-py's cluster pipeline asks a node for an EVALSHA's keys (COMMAND GETKEYS, one
        # round trip per call) unless it is told the node: the node of the call's first key
        # (a MOVED reply is still followed).
        node_of = getattr(self.client, "get_node_from_key", None)
        for i in which:
            script, args = self.calls[i]
            if script is None:
                pipe.execute_command(*args)
            elif node_of is None or not args[0]:
                pipe.execute_command("EVALSHA", script.sha, *args)
            else:
                # execute_command: redis-py's cluster pipeline has no evalsha() method.
                pipe.execute_command("EVALSHA", script.sha, *args, target_nodes=node_of(args[1]))
        return list(pipe.execute(raise_on_error=False))
