"""`cfo --no-ui`: the engine under asyncio.run, one log line per event on stderr, clean stop on signals."""

from __future__ import annotations

import asyncio
import faulthandler
import logging
import os
import signal
import sys
from typing import TextIO

from engine.config import Config
from engine.events import Event
from engine.loglines import guard
from engine.redact import readable
from engine.tmux import TmuxClient

log = logging.getLogger("cfo")
QUIET = ("watchfiles", "libtmux", "httpx")


def format_event(event: Event, with_time: bool = True) -> str:
    """`12:03:04 dispatched session=ccl-auto-11 task=web:001 account=primary`: one line per event."""
    data = event.to_dict()
    ts = str(data.pop("ts"))
    stamp = ts[11:19] + " " if with_time else ""
    kind = data.pop("type")
    fields = " ".join(f"{k}={v}" for k, v in data.items() if v not in (None, ""))
    return readable(f"{stamp}{kind} {fields}".rstrip())


def setup_logging(stream: TextIO = sys.stderr) -> bool:
    """Log to stderr; under journald (JOURNAL_STREAM set) without our own timestamps. Returns with_time."""
    with_time = "JOURNAL_STREAM" not in os.environ
    handler = logging.StreamHandler(stream)
    fmt = (
        "%(asctime)s %(levelname)s %(name)s: %(message)s"
        if with_time
        else "%(levelname)s %(name)s: %(message)s"
    )
    handler.setFormatter(logging.Formatter(fmt, datefmt="%H:%M:%S"))
    guard(handler)
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(logging.INFO)
    for name in QUIET:  # their INFO lines are per change or per request: noise in an operator's log
        logging.getLogger(name).setLevel(logging.WARNING)
    return with_time


async def serve(
    config: Config, tmux: TmuxClient, until_idle: bool = False, stream: TextIO = sys.stderr
) -> int:
    from engine.core import Engine
    from engine.lock import EngineError

    with_time = setup_logging(stream)
    faulthandler.register(signal.SIGUSR1, file=stream)  # `kill -USR1` prints every thread's stack
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    try:
        engine = Engine(config, tmux)
    except EngineError as exc:
        print(f"cfo: {exc}", file=stream, flush=True)
        return 1

    def show(event: Event) -> None:
        print(format_event(event, with_time), file=stream, flush=True)

    engine.subscribe(show)
    runner = asyncio.create_task(engine.run(stop))
    if until_idle:

        async def watch_drain() -> None:
            quiet = 0
            while not stop.is_set():
                await asyncio.sleep(0.5)
                quiet = quiet + 1 if engine.is_drained() else 0
                if quiet >= 4:
                    log.info("queue drained: stopping")
                    stop.set()

        drain = asyncio.create_task(watch_drain())
    try:
        await runner
    except EngineError as exc:
        print(f"cfo: {exc}", file=stream, flush=True)
        return 1
    finally:
        if until_idle:
            drain.cancel()
    return 0


def run_headless(config: Config, tmux: TmuxClient, until_idle: bool = False) -> int:
    """Run the engine until SIGINT/SIGTERM (or, for the demo, until the queue is drained)."""
    return asyncio.run(serve(config, tmux, until_idle=until_idle))
