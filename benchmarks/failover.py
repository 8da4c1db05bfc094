"""Failover benchmark: quota message appears -> every pool session working again under the next account.

For 4 and 20 pool sessions, each busy with a long task on real tmux with the simulated agent, the
first account is exhausted at once (its `sim-quota` switch), and the time until the last session's
"continue" was taken under the second account (the swap event, or the `moved` event of a session that met
the limit after the swap began) is measured. The last stdout line is one JSON object.

Run: .venv/bin/python benchmarks/failover.py
"""

from __future__ import annotations

import json
import sys
import time
from datetime import datetime
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))

from pipeline import Run, wait


def bench(sessions: int) -> dict[str, float]:
    run = Run(f"failover{sessions}", sessions, agent__install_stop_hook=True, watcher__interval="500ms")
    try:
        run.start()
        wait(lambda: run.idle_sessions() == sessions, 60, "pool ready")
        for i in range(sessions):
            run.drop(f"long-{i:02d}", work="120s")
        wait(lambda: run.count("submitted") == sessions, 120, "every session working")
        primary = Path(run.data["accounts"][0]["home"])
        t0 = time.time()
        (primary / "sim-quota").write_text("You've hit your limit · resets 3am")

        # Each session meets the limit at its next step: the swap resumes those stopped by then, the
        # others move alone as they stop (`moved`); the figure is when the last one works under the next.
        def moved_sessions() -> set[str]:
            events = run.events()
            swapped = {str(s) for e in events if e["type"] == "swap" for s in e["resumed"]}
            return swapped | {str(e["session"]) for e in events if e["type"] == "moved"}

        wait(lambda: len(moved_sessions()) == sessions, 120, "every session under the next account")
        events = run.events()
        [swap] = [e for e in events if e["type"] == "swap"]
        assert swap["account"] == "secondary", swap
        last = max(
            datetime.fromisoformat(str(e["ts"]).replace("Z", "+00:00")).timestamp()
            for e in events
            if e["type"] in ("swap", "moved")
        )
        return {
            f"failover_s_{sessions}": round(last - t0, 2),
            f"swap_duration_s_{sessions}": swap["duration"],
            f"moved_alone_{sessions}": sum(1 for e in events if e["type"] == "moved"),
        }
    finally:
        run.stop()


def main() -> None:
    started = time.monotonic()
    result: dict[str, float] = {}
    for n in (4, 20):
        result.update(bench(n))
        print(json.dumps(result), file=sys.stderr)
    result["growth_20_over_4"] = round(result["failover_s_20"] / result["failover_s_4"], 2)
    result["seconds"] = round(time.monotonic() - started, 1)
    print(json.dumps(result))


if __name__ == "__main__":
    main()
