"""Fleet worker: joins the fleet's NATS server, keeps this host's account state one with the fleet's, and
publishes this host's snapshot.

The fleet's account state is one key in a JetStream key-value bucket. A swap decided here is a
compare-and-set of that key from the account the pool leaves to the one it moves to; when another host got
there first, this host follows the account the fleet is on instead of swapping a second time. A change
written by another host is followed at once: its limits are merged into this host's accounts and the
switcher swaps the local pool to the fleet's account, each host resuming its own sessions. While the server
cannot be reached, local work goes on (swaps are decided here) and the connection is retried with backoff;
on its return, whichever side swapped last wins. The fleet's queue (`engine/fleet/tasks.py`) rides on the
same connection.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass, replace
from importlib.metadata import PackageNotFoundError, version
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit

from engine.accounts import mark_exhausted
from engine.config import FleetConfig
from engine.context import Context
from engine.fleet.record import (
    ACCOUNT_KEY,
    AccountRecord,
    HostView,
    RecordError,
    host_view,
    merged_usable,
    why,
)
from engine.fleet.tasks import FleetTasks
from engine.snapshot import STOPPED, FleetView, PeerRow, Snapshot
from engine.switcher import Agreement, Switcher, Trigger

if TYPE_CHECKING:
    from nats.aio.client import Client
    from nats.js.kv import KeyValue

log = logging.getLogger(__name__)

RETRY_FIRST = 0.5  # seconds before the first reconnection attempt; doubled up to RETRY_MAX
RETRY_MAX = 30.0
AGREE_TIMEOUT = 3.0  # a swap waits at most this long for the fleet before deciding alone
CAS_ATTEMPTS = 5
HOSTS_TTL = 3600.0  # a host silent this long leaves the hosts bucket
INSTALL_HINT = "pip install 'claude-failover[fleet]'"


class FleetUnavailable(RuntimeError):
    """The fleet cannot be joined from this install (nats-py missing)."""


def require_nats() -> None:
    try:
        import nats  # noqa: F401
    except ImportError:
        raise FleetUnavailable(f"fleet: the fleet needs nats-py: {INSTALL_HINT}") from None


def bucket_names(config: FleetConfig) -> tuple[str, str]:
    """(accounts bucket, hosts bucket)."""
    return f"{config.prefix}_accounts", f"{config.prefix}_hosts"


def _version() -> str:
    try:
        return version("claude-failover")
    except PackageNotFoundError:
        return ""


async def connect(config: FleetConfig, **callbacks: Any) -> Client:
    """One connection attempt, bounded; once connected, nats-py reconnects by itself for ever. (Its own
    first connect would retry for ever too, silently: the server is probed first, so that an unreachable
    fleet is said at once and retried with this worker's backoff.)"""
    import nats

    parts = urlsplit(config.url)
    host, port = parts.hostname or "127.0.0.1", parts.port or 4222
    try:
        _, writer = await asyncio.wait_for(asyncio.open_connection(host, port), config.connect_timeout)
    except (TimeoutError, OSError) as exc:
        raise ConnectionError(f"{host}:{port}: {why(exc)}") from None
    writer.close()

    async def quiet(exc: Exception) -> None:  # reconnection errors are logged by the worker, once
        log.debug("fleet: %s", exc)

    return await asyncio.wait_for(
        nats.connect(
            config.url,
            name=f"cfo {config.host}",
            connect_timeout=config.connect_timeout,
            allow_reconnect=True,
            max_reconnect_attempts=-1,
            reconnect_time_wait=1,
            error_cb=callbacks.pop("error_cb", quiet),
            **callbacks,
        ),
        config.connect_timeout * 3,
    )


async def buckets(nc: Client, config: FleetConfig) -> tuple[KeyValue, KeyValue]:
    """The accounts and hosts buckets, created on first use (idempotent: every host asks for the same)."""
    from nats.js.errors import BucketNotFoundError

    js = nc.jetstream(timeout=max(2.0, config.connect_timeout))
    accounts_name, hosts_name = bucket_names(config)
    out = []
    for name, options in ((accounts_name, {"history": 5}), (hosts_name, {"history": 1, "ttl": HOSTS_TTL})):
        try:
            out.append(await js.key_value(name))
        except BucketNotFoundError:
            out.append(await js.create_key_value(bucket=name, **options))
    return out[0], out[1]


async def read_hosts(hosts: KeyValue) -> list[HostView]:
    """Every host's last snapshot in the bucket, by host name; unreadable ones are skipped."""
    from nats.js.errors import NoKeysError

    try:
        keys = await hosts.keys()
    except NoKeysError:
        return []
    views = []
    for key in sorted(keys):
        with contextlib.suppress(Exception):
            entry = await hosts.get(key)
            if entry.value:
                views.append(HostView.decode(entry.value))
    return views


@dataclass
class _Seen:
    record: AccountRecord | None = None
    revision: int = 0


class Fleet:
    """The fleet worker: one per engine with a `fleet:` section. It is also the switcher's authority on
    which account a swap moves to (`agree`)."""

    def __init__(self, ctx: Context, switcher: Switcher, snapshot: Callable[[], Snapshot]) -> None:
        assert ctx.config.fleet is not None
        self.ctx = ctx
        self.config: FleetConfig = ctx.config.fleet
        self.switcher = switcher
        self.snapshot = snapshot
        self.state = "connecting"  # connected | unreachable: <why> | stopped
        self.peers: tuple[HostView, ...] = ()
        self.seen = _Seen()
        self._accounts: KeyValue | None = None
        self._hosts: KeyValue | None = None
        self._nc: Client | None = None
        self._unsynced = False  # a swap was decided here while the fleet could not be reached
        self._follow_pending = False
        self._warned: set[str] = set()
        self.tasks = FleetTasks(ctx, self.config, lambda: self.peers, lambda: switcher.swapping)
        """The fleet's queue: this host's tasks out, the fleet's tasks in, outcomes back."""

    # ----------------------------------------------------------------- what the console shows

    def view(self, now: float) -> FleetView:
        silent_after = self.config.silent_after
        peers = tuple(
            PeerRow(
                host=p.host,
                age=p.age(now),
                silent=p.silent(now, silent_after),
                account=p.account,
                dispatch=p.dispatch,
                working=sum(1 for s in p.sessions if s.get("state") == "working"),
                sessions=len(p.sessions),
                running=p.running,
                queued=p.queued,
                degraded=p.degraded,
                detail=tuple(
                    (str(s.get("name", "?")), str(s.get("state", "?")), s.get("task")) for s in p.sessions
                ),
            )
            for p in self.peers
        )
        record = self.seen.record
        return FleetView(
            host=self.config.host,
            url=self.config.url,
            state=self.state,
            peers=peers,
            swaps=record.swaps if record else 0,
        )

    # ----------------------------------------------------------------- running

    async def run(self) -> None:
        try:
            require_nats()
        except FleetUnavailable as exc:
            log.error("%s; this host works alone", exc)
            self.state = "unavailable: nats-py is not installed"
            return
        delay = RETRY_FIRST
        queue = asyncio.create_task(self.tasks.run(), name="fleet queue")
        while True:
            try:
                await self._join()
                delay = RETRY_FIRST
                await self._serve()
            except asyncio.CancelledError:
                queue.cancel()
                await self._leave()
                raise
            except Exception as exc:
                reason = why(exc)
                if self.state != f"unreachable: {reason}":
                    log.error(
                        "fleet: cannot reach %s: %s; retrying with backoff (local work goes on)",
                        self.config.url,
                        reason,
                    )
                self.state = f"unreachable: {reason}"
                await self._close()
                await asyncio.sleep(delay)
                delay = min(delay * 2, RETRY_MAX)

    async def _join(self) -> None:
        async def disconnected() -> None:
            if self.state == "connected":
                log.warning("fleet: lost %s; reconnecting (local work goes on)", self.config.url)
                self.state = "unreachable: connection lost"

        async def reconnected() -> None:
            log.warning("fleet: reconnected to %s", self.config.url)
            self.state = "connected"
            await self._reconcile()

        self._nc = await connect(self.config, disconnected_cb=disconnected, reconnected_cb=reconnected)
        self._accounts, self._hosts = await buckets(self._nc, self.config)
        await self._reconcile()
        self.state = "connected"
        await self._publish()
        self.peers = tuple(await read_hosts(self._hosts))
        await self.tasks.attach(self._nc)
        record = self.seen.record
        log.info(
            "fleet: joined %s as %s (%d hosts, account %s)",
            self.config.url,
            self.config.host,
            len(self.peers),
            record.active if record else self.ctx.active_account().name,
        )

    async def _serve(self) -> None:
        """Follow the account key and publish this host's snapshot every heartbeat."""
        assert self._accounts is not None and self._hosts is not None
        watcher = await self._accounts.watch(ACCOUNT_KEY)
        follow = asyncio.create_task(self._follow_updates(watcher))
        try:
            while True:
                await asyncio.sleep(self.config.heartbeat)
                if follow.done():
                    follow.result()  # a failed watch: rejoin
                    raise ConnectionError("the account watch ended")
                if self._nc is None or not self._nc.is_connected:
                    continue  # nats-py reconnects; the reconnected callback reconciles
                await self._publish()
                self.peers = tuple(await read_hosts(self._hosts))
                if self._unsynced or self._follow_pending:
                    if not self.switcher.swapping:
                        self._follow_pending = False
                        await self._reconcile()
                else:  # the watch brings changes at once; this read is for a watch lost on the way
                    record, _ = await self._read()
                    if record is not None and record.host != self.config.host:
                        self._follow(record)
        finally:
            follow.cancel()
            with contextlib.suppress(Exception):
                await watcher.stop()  # type: ignore[no-untyped-call]

    async def _follow_updates(self, watcher: Any) -> None:
        async for entry in watcher:
            if entry is None or not entry.value:
                continue  # the end of the initial values, or a deletion
            record = self._decode(entry.value)
            if record is None:
                continue
            if entry.revision > self.seen.revision:
                self.seen = _Seen(record, entry.revision)
            if record.host != self.config.host:
                self._follow(record)

    async def _publish(self) -> None:
        if self._hosts is None:
            return
        view = host_view(self.config.host, self.snapshot(), time.time(), _version())
        await self._hosts.put(self.config.host, view.encode())

    async def _leave(self) -> None:
        """A clean stop: this host's last snapshot says so, then the connection is drained."""
        self.state = "stopped"
        if self._hosts is not None and self._nc is not None and self._nc.is_connected:
            with contextlib.suppress(Exception):
                view = host_view(self.config.host, self.snapshot(), time.time(), _version())
                stopped = replace(view, dispatch=STOPPED, sessions=[])
                await asyncio.wait_for(self._hosts.put(self.config.host, stopped.encode()), 1.0)
        await self._close()

    async def _close(self) -> None:
        self.tasks.detach()
        nc, self._nc, self._accounts, self._hosts = self._nc, None, None, None
        if nc is not None:
            with contextlib.suppress(Exception):
                await asyncio.wait_for(nc.close(), 2.0)

    # ----------------------------------------------------------------- the account state

    def _decode(self, raw: bytes) -> AccountRecord | None:
        try:
            return AccountRecord.decode(raw)
        except RecordError as exc:
            self._warn_once(
                f"fleet: the account record in {bucket_names(self.config)[0]} is unreadable: {exc}"
            )
            return None

    def _warn_once(self, line: str) -> None:
        if line not in self._warned:
            self._warned.add(line)
            log.error("%s", line)

    def _local(self) -> AccountRecord:
        """This host's account state as a record."""
        ctx, now = self.ctx, self.ctx.clock.now()
        usable = {
            name: a.usable_again_at
            for name, a in ctx.state.accounts.items()
            if a.usable_again_at is not None and a.usable_again_at > now
        }
        last = ctx.state.swaps[-1].at if ctx.state.swaps else 0.0
        return AccountRecord(
            active=ctx.active_account().name, usable_at=usable, host=self.config.host, at=last
        )

    def _merge_limits(self, record: AccountRecord) -> None:
        """Limits another host saw hold here too."""
        now = self.ctx.clock.now()
        changed = False
        for name, until in record.usable_at.items():
            known = self.ctx.state.accounts.get(name)
            if self.ctx.config.account(name) is None or until <= now:
                continue
            if known is None or (known.usable_again_at or 0.0) < until:
                mark_exhausted(self.ctx.state, name, until)
                changed = True
        if changed:
            self.ctx.save()

    def _follow(self, record: AccountRecord) -> None:
        """Another host changed the fleet's account state: take its limits, and swap to its account."""
        self._merge_limits(record)
        if record.active == self.ctx.active_account().name:
            return
        if self.ctx.config.account(record.active) is None:
            self._warn_once(
                f"fleet: {record.host} moved the fleet to account {record.active!r}, which this host's "
                "config does not have; not followed"
            )
            return
        if self.switcher.swapping:
            self._follow_pending = True  # looked at again once the swap under way ends
            return
        log.warning(
            "fleet: %s moved the fleet to %s (%s); following", record.host, record.active, record.reason
        )
        self.switcher.start_swap(
            Trigger(
                reason=f"fleet: {record.host}: {record.reason}" if record.reason else f"fleet: {record.host}",
                pattern="fleet",
                snippet=f"{record.host} moved the fleet to {record.active}",
                target=record.active,
            )
        )

    async def _read(self) -> tuple[AccountRecord | None, int]:
        from nats.js.errors import KeyNotFoundError

        assert self._accounts is not None
        try:
            entry = await self._accounts.get(ACCOUNT_KEY)
        except KeyNotFoundError:
            return None, 0
        record = self._decode(entry.value) if entry.value else None
        revision = entry.revision or 0
        if record is not None and revision > self.seen.revision:
            self.seen = _Seen(record, revision)
        return record, revision

    async def _reconcile(self) -> None:
        """On joining (and rejoining): the fleet's record and this host's state become one. A record
        that does not exist yet is this host's; otherwise whichever side swapped last wins."""
        from nats.js.errors import KeyWrongLastSequenceError

        assert self._accounts is not None
        for _ in range(CAS_ATTEMPTS):
            record, revision = await self._read()
            local = self._local()
            try:
                if record is None:
                    mine = AccountRecord(
                        active=local.active,
                        usable_at=local.usable_at,
                        host=self.config.host,
                        at=time.time(),
                        reason="first host",
                    )
                    self.seen = _Seen(mine, await self._accounts.create(ACCOUNT_KEY, mine.encode()))
                elif self._unsynced and local.at > record.at and local.active != record.active:
                    now = self.ctx.clock.now()
                    mine = AccountRecord(
                        active=local.active,
                        usable_at=merged_usable(record.usable_at, local.usable_at, now=now),
                        host=self.config.host,
                        at=time.time(),
                        reason="swapped while the fleet was unreachable",
                        swaps=record.swaps + 1,
                    )
                    new = await self._accounts.update(ACCOUNT_KEY, mine.encode(), last=revision)
                    self.seen = _Seen(mine, new)
                else:
                    self._follow(record)
            except KeyWrongLastSequenceError:
                continue  # another host wrote meanwhile: read it again
            self._unsynced = False
            return

    async def agree(self, old: str, proposed: str, reason: str) -> Agreement:
        """The switcher's question before a swap: may the pool leave `old` for `proposed`? The fleet's
        answer is the account to move to — `proposed` when this host moved the fleet, or the account
        another host already moved it to — and what happened, for the swap's record."""
        if self._accounts is None or self._nc is None or not self._nc.is_connected:
            self._unsynced = True
            return Agreement(proposed, "decided here: the fleet is unreachable")
        try:
            return await asyncio.wait_for(self._agree(old, proposed, reason), AGREE_TIMEOUT)
        except Exception as exc:  # a timeout or a lost connection: this host decides, and says so
            self._unsynced = True
            log.warning("fleet: the swap is decided here: %s", why(exc))
            return Agreement(proposed, f"decided here: {why(exc)}")

    async def _agree(self, old: str, proposed: str, reason: str) -> Agreement:
        from nats.js.errors import KeyWrongLastSequenceError

        assert self._accounts is not None
        now = self.ctx.clock.now()
        for _ in range(CAS_ATTEMPTS):
            record, revision = await self._read()
            if record is not None and record.active != old:
                target = record.active
                known = self.ctx.config.account(target) is not None
                if target == proposed or (known and self.ctx.state.account_usable(target, now)):
                    self._merge_limits(record)
                    return Agreement(target, f"followed {record.host or 'the fleet'}")
            local = self._local()
            mine = AccountRecord(
                active=proposed,
                usable_at=merged_usable(record.usable_at if record else {}, local.usable_at, now=now),
                host=self.config.host,
                at=time.time(),
                reason=reason,
                swaps=(record.swaps if record else 0) + 1,
            )
            try:
                if record is None:
                    new = await self._accounts.create(ACCOUNT_KEY, mine.encode())
                else:
                    new = await self._accounts.update(ACCOUNT_KEY, mine.encode(), last=revision)
            except KeyWrongLastSequenceError:
                continue  # another host wrote meanwhile: read it and decide again
            self.seen = _Seen(mine, new)
            return Agreement(proposed, "decided for the fleet")
        raise TimeoutError("the account record kept changing")
