"""The fleet's queue on NATS JetStream: every host's ready task files are published to one work-queue
stream, each host with the project checked out fetches them into its own inbox as its pool sessions free
up, and the outcome goes back to the host the task came from.

A task's claim record (a key-value entry, compare-and-set) says which host runs which generation of it, so
that a redelivered or duplicated message never becomes a second run; a message is kept alive with progress
acknowledgements while its task is queued or running here, and acknowledged once its outcome is sent.
While the server cannot be reached, this host exports nothing, takes nothing, finishes what it has and
keeps its outcomes in an outbox on disk until the server is back.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import os
import time
from collections.abc import Callable, Mapping
from dataclasses import replace
from pathlib import Path
from typing import TYPE_CHECKING

from engine.atomic import rename_noreplace
from engine.config import FleetConfig
from engine.context import Context
from engine.events import Event
from engine.fleet import files
from engine.fleet.queue import (
    Claim,
    Imported,
    Outcome,
    QueueError,
    TaskMessage,
    claim_key,
    consumer_name,
    dependency_met,
    digest,
    export_decision,
    finished,
    import_decision,
    outcome_subject,
    published,
    running,
    task_subject,
)
from engine.fleet.record import HostView, why
from engine.queue import ScanResult
from engine.sidecars import clear_all_sidecars
from engine.state import OUT_OF_POOL
from engine.tasks import PRIORITIES, DoneListing, Task, TaskError, queue_dir, read_task

if TYPE_CHECKING:
    from nats.aio.client import Client
    from nats.aio.msg import Msg
    from nats.js.client import JetStreamContext
    from nats.js.kv import KeyValue

log = logging.getLogger(__name__)

CLAIMS_KEPT = 7 * 86400.0
"""How long a claim record is kept after its last change: far longer than any task may run, or wait for a
host that went silent, so the records of finished tasks do not pile up for ever."""
POLL = 1.0  # how often the loop looks for work and outcomes when no publish woke it
DEPENDENCY_DELAY = 5.0  # a task whose dependency is not done fleet-wide is offered again this much later
RETRY_DELAY = 1.0  # a message met in a passing state (its id busy here, a record being written)
DUPLICATE_WINDOW = 120.0
CAS_ATTEMPTS = 5
OUTCOME_BATCH = 20
FOOTER_SENT = ("session", "account", "model", "started", "ended", "how", "host")


def stream_names(config: FleetConfig) -> tuple[str, str]:
    """(the task stream, the outcome stream); the claim records' bucket is named like the task stream."""
    return f"{config.prefix}_tasks", f"{config.prefix}_outcomes"


async def pull(nc: Client, stream: str, consumer: str, batch: int, timeout: float = 1.0) -> list[Msg]:
    """Up to `batch` messages a durable pull consumer has now, without waiting for more (a no-wait pull
    request: the server answers at once with what it has, then a status)."""
    inbox = nc.new_inbox()
    sub = await nc.subscribe(inbox)
    got: list[Msg] = []
    try:
        request = json.dumps({"batch": batch, "no_wait": True}).encode()
        await nc.publish(f"$JS.API.CONSUMER.MSG.NEXT.{stream}.{consumer}", request, reply=inbox)
        while len(got) < batch:
            msg = await sub.next_msg(timeout=timeout)
            if msg.headers and msg.headers.get("Status"):
                break  # 404 no messages, 408 request expired, 409 …: nothing more now
            got.append(msg)
    except TimeoutError:
        pass
    finally:
        with contextlib.suppress(Exception):
            await sub.unsubscribe()
    return got


class FleetTasks:
    """This host's part of the fleet queue: export, import, progress, outcomes. The dispatcher asks
    `imported` and `exchange`; the fleet worker attaches and detaches the connection and runs `run`."""

    def __init__(
        self,
        ctx: Context,
        config: FleetConfig,
        peers: Callable[[], tuple[HostView, ...]],
        busy: Callable[[], bool],
    ) -> None:
        self.ctx = ctx
        self.config = config
        self.host = config.host
        self.peers = peers
        self.busy = busy  # a swap under way: no new work is taken
        self.ledger = files.load_ledger(ctx.config.state_dir)
        self.confirmed: set[str] = set()
        """Imports this host may run: taken in this process, or found still its own after a restart."""
        self.attempted: set[str] = set()
        """Keys whose publish has an unknown result: not run here before the fleet has answered."""
        self.local_waiting = 0
        self._projects: dict[str, Path] = {}
        self.wake = asyncio.Event()
        self._lock = asyncio.Lock()
        self._ended: dict[str, tuple[str, str]] = {}
        self._nc: Client | None = None
        self._js: JetStreamContext | None = None
        self._claims: KeyValue | None = None
        self._consumers: set[str] = set()
        self._progress_at = 0.0
        self._warned: set[str] = set()
        ctx.events.subscribe(self._on_event)

    @property
    def projects(self) -> dict[str, Path]:
        """The projects of the last dispatch round (name -> folder), or those found at start."""
        return self._projects or self.ctx.projects

    # ----------------------------------------------------------------- the connection

    @property
    def connected(self) -> bool:
        return self._nc is not None and self._nc.is_connected and self._claims is not None

    async def attach(self, nc: Client) -> None:
        """The streams, the claims bucket and this host's outcome consumer (idempotent for every host);
        then the imports of an earlier run are checked against the fleet."""
        from nats.js.api import ConsumerConfig, RetentionPolicy, StorageType
        from nats.js.errors import BucketNotFoundError

        js = nc.jetstream(timeout=max(2.0, self.config.connect_timeout))
        tasks, outcomes = stream_names(self.config)
        for name, subjects in (
            (tasks, f"{self.config.prefix}.task.>"),
            (outcomes, f"{self.config.prefix}.outcome.>"),
        ):
            await js.add_stream(
                name=name,
                subjects=[subjects],
                retention=RetentionPolicy.WORK_QUEUE,
                storage=StorageType.FILE,
                duplicate_window=DUPLICATE_WINDOW,
            )
        try:
            claims = await js.key_value(tasks)
        except BucketNotFoundError:
            claims = await js.create_key_value(bucket=tasks, history=1, ttl=CLAIMS_KEPT)
        await js.add_consumer(
            outcomes,
            ConsumerConfig(
                durable_name=f"outcomes-{self.host}",
                ack_wait=self.config.ack_wait,
                filter_subject=outcome_subject(self.config.prefix, self.host),
            ),
        )
        self._nc, self._js, self._claims = nc, js, claims
        self._consumers.clear()

        async def nudge(msg: Msg) -> None:  # a task published anywhere, or an outcome for this host
            self.wake.set()

        # Plain subscriptions see what the streams store as it is published: the loop looks at once,
        # not at its next poll.
        for subject in (f"{self.config.prefix}.task.>", outcome_subject(self.config.prefix, self.host)):
            await nc.subscribe(subject, cb=nudge)
        await self._confirm_imports()
        self.wake.set()

    def detach(self) -> None:
        self._nc, self._js, self._claims = None, None, None

    # ----------------------------------------------------------------- the dispatcher's questions

    def imported(self, task: Task) -> bool:
        """A task this host took from the fleet (its dependencies were checked fleet-wide)."""
        return task.key in self.ledger.imports or os.path.lexists(
            files.inbox_paths(task.project_dir, task.id)[1]
        )

    async def exchange(self, projects: Mapping[str, Path], scan: ScanResult, ready: list[Task]) -> list[Task]:
        """A dispatch round's tasks for the fleet: while connected, every task of this host's own goes to the
        fleet (blocked ones too: their dependencies are checked fleet-wide); returns what runs here — the
        imports this host holds, and its own ready tasks while the fleet cannot be reached."""
        self._projects = dict(projects)
        ready_keys = {t.key for t in ready}
        local: list[Task] = []
        exports: list[Task] = []
        connected = self.connected
        for task in scan.tasks:
            if scan.marked(task.key, "delegated"):
                continue
            if self.imported(task):
                if task.key in self.confirmed and task.key in self.ledger.imports:
                    local.append(task)
            elif connected:
                exports.append(task)
            elif task.key in ready_keys and task.key not in self.attempted:
                local.append(task)
        if exports:
            async with self._lock:
                for task in exports:
                    try:
                        await self._export(task)
                    except Exception as exc:  # the next round tries again; the task does not run here
                        self._warn(f"fleet: {task.key} not published: {why(exc)}")
                        break
        self.local_waiting = sum(1 for t in local if t.key not in self.ledger.imports)
        self.wake.set()
        return local

    # ----------------------------------------------------------------- export (the origin)

    async def _export(self, task: Task) -> None:
        assert self._js is not None and self._claims is not None
        try:
            text = await asyncio.to_thread(task.path.read_bytes)
        except FileNotFoundError:
            return
        sha = digest(text)
        key = claim_key(task.project, task.id)
        record, revision = await self._get(key)
        decision = export_decision(record, self.host, sha)
        if decision == "wait":
            self._warn(f"fleet: {task.key} waits: the same id from {record and record.origin} is in flight")
            return
        if decision == "publish":
            self.attempted.add(task.key)
            message = TaskMessage(self.host, task.project, task.id, task.priority, task.created)
            ack = await self._js.publish(
                task_subject(self.config.prefix, task.project, task.priority),
                text,
                headers=message.headers(text),
                stream=stream_names(self.config)[0],
            )
            for _ in range(CAS_ATTEMPTS):
                new = published(record, self.host, ack.seq, sha, time.time())
                if new is record or await self._cas(key, new, record, revision):
                    break
                record, revision = await self._get(key)
            else:
                raise TimeoutError(f"the claim record of {task.key} kept changing")
        await asyncio.to_thread(_mark_published, task, text)
        self.attempted.discard(task.key)
        log.info("fleet: %s published", task.key)

    # ----------------------------------------------------------------- import (any host)

    def capacity(self) -> int:
        """How many fleet tasks this host may take now: free pool sessions less the work already queued."""
        ctx = self.ctx
        if ctx.state.dispatch == "paused" or ctx.degraded is not None or self.busy():
            return 0
        now = ctx.clock.now()
        free = 0
        for name in ctx.config.pool_names:
            s = ctx.state.sessions.get(name)
            if name in ctx.running or (s is not None and s.state == OUT_OF_POOL):
                continue
            if s is not None and s.held_until is not None and now < s.held_until:
                continue
            free += 1
        running = {r.task.key for r in ctx.running.values()}
        waiting = sum(1 for k in self.ledger.imports if k not in running)
        return max(0, free - waiting - self.local_waiting)

    async def fill(self) -> int:
        """Fetch up to `capacity` tasks, critical first, into the inboxes; returns how many were taken."""
        taken = 0
        for priority in PRIORITIES:
            for project, project_dir in sorted(self.projects.items()):
                while (room := self.capacity()) > 0:
                    msgs = await self._fetch(project, priority, room)
                    if not msgs:
                        break
                    async with self._lock:
                        for msg in msgs:
                            taken += await self._take(msg, project_dir)
        if taken:
            self.ctx.wake_dispatch.set()
        return taken

    async def _fetch(self, project: str, priority: str, batch: int) -> list[Msg]:
        from nats.js.api import ConsumerConfig

        assert self._nc is not None and self._js is not None
        stream = stream_names(self.config)[0]
        name = consumer_name(project, priority)
        if name not in self._consumers:
            await self._js.add_consumer(
                stream,
                ConsumerConfig(
                    durable_name=name,
                    ack_wait=self.config.ack_wait,
                    filter_subject=task_subject(self.config.prefix, project, priority),
                ),
            )
            self._consumers.add(name)
        return await pull(self._nc, stream, name, batch)

    def _age(self, host: str) -> float:
        now = time.time()
        return next((p.age(now) for p in self.peers() if p.host == host), float("inf"))

    async def _take(self, msg: Msg, project_dir: Path) -> int:
        """One fetched message: the claim decision, then the task written into the inbox. 1 if taken."""
        try:
            meta = TaskMessage.from_headers(msg.headers)
        except QueueError as exc:
            log.error("fleet: a message on %s is dropped: %s", msg.subject, exc)
            await msg.term()
            return 0
        seq = msg.metadata.sequence.stream
        for n, sent in enumerate(self.ledger.outbox):
            if (sent.key, sent.seq) == (meta.key, seq):  # it ended here; its outcome is not sent yet
                self.ledger.outbox[n] = replace(sent, reply=msg.reply or sent.reply)
                await msg.in_progress()
                return 0
        key = claim_key(meta.project, meta.task_id)
        record, revision = await self._get(key)
        held = self.ledger.imports.get(meta.key)
        decision = import_decision(
            record,
            seq,
            self.host,
            runs_here=held is not None and held.seq == seq,
            runner_age=self._age(record.runner) if record is not None else float("inf"),
            takeover_after=self.config.takeover_after,
        )
        if decision.action == "drop":
            log.info("fleet: %s (message %d) dropped: %s", meta.key, seq, decision.why)
            await msg.ack()
            return 0
        if decision.action == "later":
            delay = self.config.ack_wait if record is not None and record.state == "running" else RETRY_DELAY
            await msg.nak(delay=delay)
            return 0
        if decision.action == "keep":
            assert held is not None
            self.ledger.imports[meta.key] = replace(held, reply=msg.reply or held.reply)
            await self._save()
            await msg.in_progress()
            return 0
        staged = await asyncio.to_thread(
            files.stage_import, project_dir, meta.task_id, msg.data, meta.created
        )
        if staged is None:
            await msg.nak(delay=RETRY_DELAY)  # the id is busy here (its own file not renamed yet)
            return 0
        path, claim = staged
        if not await self._dependencies_met(meta, path, project_dir):
            await asyncio.to_thread(files.drop_staged, path)
            await msg.nak(delay=DEPENDENCY_DELAY)
            return 0
        new = running(record, self.host, seq, meta.origin, time.time(), decision.action == "take_over")
        if not await self._cas(key, new, record, revision):
            await asyncio.to_thread(files.drop_staged, path)
            await msg.nak(delay=RETRY_DELAY)  # another host took it meanwhile: decided again
            return 0
        imported = Imported(meta.project, meta.task_id, meta.origin, seq, new.gen, msg.reply or "", claim)
        self.ledger.imports[meta.key] = imported
        self.confirmed.add(meta.key)
        await self._save()
        if not await asyncio.to_thread(files.place_import, project_dir, imported, path):
            del self.ledger.imports[meta.key]
            await self._save()
            await msg.nak(delay=RETRY_DELAY)
            return 0
        await msg.in_progress()
        if decision.why:
            log.warning("fleet: %s taken over from %s: %s", meta.key, record and record.runner, decision.why)
        log.info("fleet: %s from %s taken (generation %d)", meta.key, meta.origin, new.gen)
        return 1

    async def _dependencies_met(self, meta: TaskMessage, staged: Path, project_dir: Path) -> bool:
        try:
            task = await asyncio.to_thread(
                read_task, staged, meta.project, project_dir, self.ctx.config.tasks.max_bytes
            )
        except TaskError:
            return True  # a bad file: the pipeline moves it to failed/, and the outcome says why
        if task.unsafe_depends:
            return False  # never met, as on a single host
        listing = DoneListing()
        for dep in task.depends_on:
            record, _ = await self._get(claim_key(dep.project, dep.task_id))
            dep_dir = self.projects.get(dep.project) or (
                self.ctx.config.projects_dir / dep.project if self.ctx.config.projects_dir else None
            )
            here = dep_dir is not None and listing.has(queue_dir(dep_dir, "done"), dep.task_id)
            if not dependency_met(record, here):
                return False
        return True

    async def _confirm_imports(self) -> None:
        """After a restart: an import the fleet still gives to this host runs here; one taken over by
        another host (or finished) is removed from the inbox if it has not started."""
        running_keys = {r.task.key for r in self.ctx.running.values()}
        changed = False
        for key, held in list(self.ledger.imports.items()):
            if key in self.confirmed or key in self._ended:
                continue
            record, _ = await self._get(claim_key(held.project, held.task_id))
            project_dir = self.projects.get(held.project)
            mine = (
                record is not None
                and not record.finished
                and record.runner == self.host
                and (record.seq, record.gen) == (held.seq, held.gen)
            )
            if key in running_keys:
                self.confirmed.add(key)  # adopted by recovery: it finishes here whatever the record says
                continue
            present = project_dir is not None and any(
                os.path.lexists(p) for p in files.inbox_paths(project_dir, held.task_id)[::2]
            )
            if mine and present:
                self.confirmed.add(key)
                continue
            if project_dir is not None:
                await asyncio.to_thread(files.drop_import, project_dir, held.task_id)
            del self.ledger.imports[key]
            changed = True
            log.warning("fleet: %s is no longer this host's to run; removed", key)
        if changed:
            await self._save()
        await asyncio.to_thread(self._drop_orphans)

    def _drop_orphans(self) -> None:
        """A `.fleet` sidecar this host has no import for (a crash between two steps): its task, unless it
        runs, is removed, since its message comes back; a sidecar alone would keep the id busy here."""
        for project, project_dir in self.projects.items():
            for task_id in files.sidecar_ids(project_dir):
                if f"{project}:{task_id}" in self.ledger.imports:
                    continue
                if os.path.lexists(files.inbox_paths(project_dir, task_id)[2]):
                    continue  # it runs: its end is reported as a local task's
                files.drop_import(project_dir, task_id)
                log.warning("fleet: %s:%s was not this host's to run; removed", project, task_id)

    # ----------------------------------------------------------------- outcomes

    def _on_event(self, event: Event) -> None:
        if event.type in ("completed", "failed") and event.task in self.ledger.imports:
            self._ended[event.task] = (event.type, event.reason or "")
            with contextlib.suppress(RuntimeError):
                self.wake.set()

    async def _collect(self) -> None:
        """Imports that ended here become outcomes in the outbox (on disk before anything is sent); the
        done/ or failed/ file they ended in leaves this host, since the outcome lands at the origin."""
        ended, self._ended = self._ended, {}
        for key, (kind, reason) in ended.items():
            held = self.ledger.imports.get(key)
            project_dir = self.projects.get(held.project) if held is not None else None
            if held is None or project_dir is None:
                continue
            found = await asyncio.to_thread(files.find_finished, project_dir, held)
            text, footer, landed = "", {}, None
            if found is not None:
                state, landed, fields = found
                footer = {k: str(fields[k]) for k in FOOTER_SENT if fields.get(k) is not None}
                reason = str(fields.get("reason") or reason)
                if state == "done":
                    text = await asyncio.to_thread(landed.read_text, "utf-8", "replace")
            else:
                state = "done" if kind == "completed" else "failed"
            outcome = Outcome(
                project=held.project,
                task_id=held.task_id,
                origin=held.origin,
                runner=self.host,
                seq=held.seq,
                state="done" if state == "done" else "failed",
                text=text,
                reason="" if state == "done" else reason,
                footer=footer,
                reply=held.reply,
            )
            del self.ledger.imports[key]
            self.confirmed.discard(key)
            self.ledger.outbox.append(outcome)
            await self._save()
            with contextlib.suppress(OSError):
                await asyncio.to_thread(files.drop_sidecar, project_dir, held.task_id)
                if landed is not None:
                    await asyncio.to_thread(os.unlink, landed)

    async def _flush(self) -> None:
        """Send the outbox: the claim record finished, the outcome published to its origin, the task
        message acknowledged; each step survives a repeat."""
        assert self._nc is not None and self._js is not None
        while self.ledger.outbox:
            outcome = self.ledger.outbox[0]
            key = claim_key(outcome.project, outcome.task_id)
            for _ in range(CAS_ATTEMPTS):
                record, revision = await self._get(key)
                new = finished(record, outcome, time.time())
                if new is None or await self._cas(key, new, record, revision):
                    break
            await self._js.publish(
                outcome_subject(self.config.prefix, outcome.origin),
                outcome.encode(),
                headers={"Nats-Msg-Id": outcome.msg_id()},
                stream=stream_names(self.config)[1],
            )
            if outcome.reply:
                await self._nc.publish(outcome.reply, b"+ACK")
            self.ledger.outbox.pop(0)
            await self._save()
            log.info("fleet: %s %s, sent to %s", outcome.key, outcome.state, outcome.origin)

    async def _receive(self) -> None:
        """Outcomes of this host's tasks, run here or elsewhere: each lands in done/ or failed/."""
        assert self._nc is not None
        msgs = await pull(self._nc, stream_names(self.config)[1], f"outcomes-{self.host}", OUTCOME_BATCH)
        for msg in msgs:
            try:
                outcome = Outcome.decode(msg.data)
            except QueueError as exc:
                log.error("fleet: an outcome is dropped: %s", exc)
                await msg.term()
                continue
            project_dir = self.projects.get(outcome.project)
            if project_dir is None:
                log.error(
                    "fleet: %s ended on %s, but project %s is not here",
                    outcome.key,
                    outcome.runner,
                    outcome.project,
                )
            else:
                landed = await asyncio.to_thread(files.land_outcome, project_dir, outcome)
                if landed is None:
                    log.info("fleet: %s: outcome from %s already landed", outcome.key, outcome.runner)
                else:
                    log.info(
                        "fleet: %s %s on %s: %s", outcome.key, outcome.state, outcome.runner, landed.name
                    )
            await msg.ack()

    async def _progress(self) -> None:
        """Keep the messages of the tasks queued or running here alive."""
        assert self._nc is not None
        now = time.monotonic()
        if now - self._progress_at < self.config.ack_wait / 3:
            return
        self._progress_at = now
        for held in self.ledger.imports.values():
            if held.reply:
                await self._nc.publish(held.reply, b"+WPI")

    # ----------------------------------------------------------------- the loop

    async def _ended_before(self) -> None:
        """Imports that ended before a restart, their outcome not collected yet: collected now."""
        for key, held in self.ledger.imports.items():
            project_dir = self.projects.get(held.project)
            if project_dir is not None and key not in self._ended:
                found = await asyncio.to_thread(files.find_finished, project_dir, held)
                if found is not None:
                    self._ended[key] = ("completed" if found[0] == "done" else "failed", "")

    async def run(self) -> None:
        """Collect outcomes always; while connected send them, keep messages alive, receive this host's
        outcomes and fetch work for free sessions."""
        with contextlib.suppress(OSError):
            await self._ended_before()
        while True:
            try:
                await self._collect()
                if self.connected:
                    await self._progress()
                    await self._flush()
                    await self._receive()
                    await self.fill()
            except asyncio.CancelledError:
                raise
            except Exception as exc:  # a lost connection mid-step: the next pass goes on from the ledger
                self._warn(f"fleet: the queue's pass failed: {why(exc)}")
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self.wake.wait(), POLL)
            self.wake.clear()

    # ----------------------------------------------------------------- records and the ledger

    async def _get(self, key: str) -> tuple[Claim | None, int]:
        from nats.js.errors import KeyNotFoundError

        assert self._claims is not None
        try:
            entry = await self._claims.get(key)
        except KeyNotFoundError:
            return None, 0
        if not entry.value:
            return None, entry.revision or 0
        try:
            return Claim.decode(entry.value), entry.revision or 0
        except QueueError as exc:
            self._warn(f"fleet: the claim record {key} is unreadable: {exc}")
            return None, entry.revision or 0

    async def _cas(self, key: str, new: Claim, old: Claim | None, revision: int) -> bool:
        """Write `new` if the record is still at `revision`; False if another host wrote first."""
        from nats.js.errors import KeyWrongLastSequenceError

        assert self._claims is not None
        try:
            if revision == 0:
                await self._claims.create(key, new.encode())
            else:
                await self._claims.update(key, new.encode(), last=revision)
        except KeyWrongLastSequenceError:
            return False
        return True

    async def _save(self) -> None:
        await asyncio.to_thread(files.save_ledger, self.ctx.config.state_dir, self.ledger.encode())

    def _warn(self, line: str) -> None:
        if line not in self._warned:
            self._warned.add(line)
            log.warning("%s", line)


def _mark_published(task: Task, text: bytes) -> None:
    """The origin's file becomes `<id>.md.published` (the scan and recovery pass it by); a copy of a file
    already published is removed instead."""
    target = files.published_path(task.project_dir, task.id)
    try:
        rename_noreplace(task.path, target)
    except FileNotFoundError:
        return
    except FileExistsError:
        try:
            same = target.read_bytes() == text
        except OSError:
            same = False
        if same:
            os.unlink(task.path)
        else:
            os.replace(task.path, target)
    clear_all_sidecars(task.path, task.id)
