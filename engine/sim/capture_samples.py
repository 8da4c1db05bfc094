"""Regenerates the sim-*.txt pane samples on a private tmux socket (`-m engine.sim.capture_samples DIR`)."""

from __future__ import annotations

import os
import re
import shutil
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

from engine.tmux import LibtmuxClient

# Samples show this session id (in /status), so they read the same from one run to the next.
SESSION_ID = "048a2e3d-a4c2-4391-8f62-977d81bbaaac"
WIDTH, HEIGHT = 120, 40
PASTE_WAIT = 0.15  # a lone Enter must follow a paste by at least 100 ms
QUOTA_TASK = (
    "[002-quota-banner.md] Show a banner when the API says usage limit reached\n"
    'sim: say "The banner reads: usage limit reached, resets 3am"\n'
    "sim: work 60s"
)
TURN_END = re.compile(r"^✻ \S+ for \d+s$", re.M)
LONG_TASK = "[001-fix-rounding.md] Fix rounding of refunds\n" + "\n".join(
    f"Step {i}: check the refund path for rounding errors." for i in range(2, 41)
)


class Pane:
    """One simulated agent in its own account directory, driven and read through tmux."""

    def __init__(self, client: LibtmuxClient, root: Path, name: str) -> None:
        self.client = client
        # One session per sample, all kept to the end: the server would exit with its last session.
        self.session = f"sample-{name}"
        self.account = root / "accounts" / name
        self.account.mkdir(parents=True)
        self.project = root / "webapp"
        self.project.mkdir(exist_ok=True)

    def start(self, *args: str, **env: str) -> Pane:
        command = [sys.executable, "-m", "engine.sim", "--dangerously-skip-permissions"]
        command += list(args) or ["--session-id", SESSION_ID]
        environment = {"CLAUDE_CONFIG_DIR": str(self.account), "CFO_SIM_DEFAULT_WORK": "500ms", **env}
        self.client.new_session(self.session, self.project, command, environment, WIDTH, HEIGHT)
        self.wait_for("bypass permissions", what="the prompt")
        return self

    def submit(self, text: str) -> None:
        self.client.send_text(self.session, text)
        if "\n" in text:
            time.sleep(PASTE_WAIT)
        self.client.send_enter(self.session)

    def capture(self) -> str:
        return self.client.capture(self.session)

    def wait_for(self, *needles: str | re.Pattern[str], what: str, timeout: float = 10.0) -> str:
        """The capture once it shows every needle; the no-break spaces the agent draws match plain ones."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            text = self.capture()
            plain = text.replace("\u00a0", " ")
            if all(n.search(plain) if isinstance(n, re.Pattern) else n in plain for n in needles):
                return text
            time.sleep(0.05)
        raise RuntimeError(f"timed out waiting for {what}; the pane shows:\n{self.capture()}")


def idle(pane: Pane) -> str:
    return pane.start().capture()


def working(pane: Pane) -> str:
    pane.start().submit(QUOTA_TASK)
    return pane.wait_for("● The banner reads", "(2s · ", what="the spinner at two seconds")


def working_long(pane: Pane) -> str:
    pane.start(CFO_SIM_HEADSTART="101s").submit("Refactor the billing module\nsim: work 60s")
    return pane.wait_for("(1m 4", "tokens)", what="a spinner past a minute")


def paste_pending(pane: Pane) -> str:
    pane.start().client.send_text(pane.session, LONG_TASK)
    return pane.wait_for("❯ [Pasted text #1 +40 lines]", what="the paste marker")


def turn_ended(pane: Pane) -> str:
    pane.start().submit("[001-login-form.md] Validate the login form\nsim: work 1s")
    return pane.wait_for(" for 1s", what="the turn-end line")


def quota_stop(pane: Pane) -> str:
    pane.start().submit(
        "[003-export.md] Export the invoices\nsim: work 500ms\n"
        'sim: quota "You\'ve hit your limit · resets 3am (Europe/Berlin)"'
    )
    return pane.wait_for("  ⎿  You've hit your limit", TURN_END, what="the limit stop")


def limit_menu(pane: Pane) -> str:
    (pane.account / "sim-quota").write_text("You've hit your limit · resets 3am (Europe/Berlin)\n")
    (pane.account / "sim-limit-menu").write_text("")
    pane.start().submit("[004-search.md] Add search to the admin page")
    return pane.wait_for("Enter to confirm · Esc to cancel", what="the limit menu")


def error(status: str, shown: str) -> Callable[[Pane], str]:
    def scenario(pane: Pane) -> str:
        pane.start().submit(f"[002-flaky-server.md] Retry flaky webhooks\nsim: {status}\nsim: work 2s")
        return pane.wait_for(shown, TURN_END, what=f"the {status} bullet and the turn end")

    return scenario


def retrying(pane: Pane) -> str:
    """The last attempt, whose retry line names the error: still work in progress, not the stop."""
    pane.start(CFO_SIM_RETRY_WAIT="3s").submit("[002-flaky-server.md] Retry flaky webhooks\nsim: error 529")
    return pane.wait_for("529 Overloaded · Retrying in 3s · attempt 2/2", what="the last retry spinner")


def auth(pane: Pane) -> str:
    pane.start().submit("[005-cache.md] Cache the price list\nsim: auth")
    return pane.wait_for("  ⎿  Not logged in · Please run /login", TURN_END, what="the auth error line")


def resumed_cut_off(pane: Pane) -> str:
    """A turn cut off before any answer (here while its request was retried), then `--resume`d."""
    task = "[007-report.md] Write the weekly report\nGroup the numbers by team.\nsim: error 529"
    pane.start(CFO_SIM_RETRY_WAIT="30s").submit(task)
    pane.wait_for("Retrying in", what="the retry spinner")
    pane.client.kill_session(pane.session)
    pane.start("--resume", SESSION_ID)
    return pane.wait_for("❯ [007-report.md] Write the weekly report", what="the resumed prompt")


def status(pane: Pane) -> str:
    pane.start().submit("/status")
    return pane.wait_for("Session ID: ", what="the status block")


def queued_input(pane: Pane) -> str:
    pane.start().submit("[006-docs.md] Document the refund fix\nsim: work 30s")
    pane.wait_for("(1s · ", what="the spinner")
    pane.submit("/status")
    return pane.wait_for("  > /status", "(2s · ", what="the queued message")


SAMPLES: dict[str, Callable[[Pane], str]] = {
    "idle": idle,
    "working": working,
    "working-long": working_long,
    "paste-pending": paste_pending,
    "turn-ended": turn_ended,
    "quota-stop": quota_stop,
    "limit-menu": limit_menu,
    "error-529": error("error 529", "● API Error: 529 Overloaded."),
    "error-500": error("error 500", "● API Error: 500 Internal server error."),
    "error-429": error("error 429", "● API Error: Request rejected (429)"),
    "throttle": error("throttle", "● API Error: Server is temporarily limiting requests"),
    "retrying": retrying,
    "auth": auth,
    "resumed-cut-off": resumed_cut_off,
    "status": status,
    "queued-input": queued_input,
}


def main(argv: list[str] | None = None) -> int:
    args = sys.argv[1:] if argv is None else argv
    if len(args) != 1:
        sys.stderr.write("usage: python -m engine.sim.capture_samples OUTDIR\n")
        return 2
    out = Path(args[0])
    out.mkdir(parents=True, exist_ok=True)
    # A fixed root keeps the cwd shown in the samples the same from one run to the next.
    root = Path(tempfile.gettempdir()) / "cfo-sim-samples"
    shutil.rmtree(root, ignore_errors=True)
    client = LibtmuxClient(socket_name=f"cfo-samples-{os.getpid()}")
    try:
        for name, scenario in SAMPLES.items():
            pane = Pane(client, root, name)
            text = scenario(pane)
            (out / f"sim-{name}.txt").write_text(text, encoding="utf-8")
            print(f"wrote {out / f'sim-{name}.txt'}")
    finally:
        client.kill_server()
        shutil.rmtree(root, ignore_errors=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
