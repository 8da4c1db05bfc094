"""The commented config that `cfo init` writes, and the writing of it."""

from __future__ import annotations

from pathlib import Path

from engine.config import ConfigError


def write_init(path: Path, force: bool = False) -> Path:
    """Write INIT_TEMPLATE to `path`, creating its folders; an existing file is kept unless `force`."""
    path = path.expanduser()
    if path.is_dir():
        raise ConfigError(f"{path}: is a directory, not a config file")
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise ConfigError(f"{path}: cannot create its folder: {exc.strerror or exc}") from None
    try:
        with path.open("w" if force else "x", encoding="utf-8") as out:
            out.write(INIT_TEMPLATE)
    except FileExistsError:
        raise ConfigError(
            f"{path}: already exists; keep it, or overwrite it with: cfo init --force"
        ) from None
    except OSError as exc:
        raise ConfigError(f"{path}: cannot write it: {exc.strerror or exc}") from None
    return path


INIT_TEMPLATE = """\
# claude-failover (cfo) configuration. Check it with: cfo check
#
# Every key is optional except `accounts`; the values below are the defaults.
# Durations: 500ms, 30s, 5m, 1h, 7d, or combined like 1h30m; a bare number means seconds.
# Paths: ~ and $VARIABLES are expanded ($$ is a literal $); a relative path is taken from this file's folder.
# Remember that YAML reads unquoted yes/no/on/off as true/false: quote them where you mean text.

tmux:
  # The tmux server the sessions live on, as in `tmux -L NAME`; null is your default server.
  socket_name: null

agent:
  # The program each session runs, found on PATH, and the arguments it always gets.
  command: claude
  args: [--dangerously-skip-permissions]
  # The --model for each task priority (critical, high, default, low); a priority that is not listed,
  # or is null, uses `default`.
  models:
    critical: opus
    default: sonnet
  # How long a freshly started agent may take to show its prompt before the launch counts as failed.
  prompt_timeout: 30s
  # Where each session's conversation id is kept (<session>-resume-id.txt), so that after an account
  # swap the agent continues the same conversation.
  resume_dir: ~/.claude-context
  # The message pasted to the agent: {file} is the task's file name (<id>.md), {body} its text.
  # It must start with [{file}]: after a restart the agent's echo of it tells which session holds which
  # task. Write {{ and }} for braces.
  message_template: "[{file}] {body}"
  # true: add a Stop hook to each account's settings.json that signals the end of every turn, so that
  # completions are seen at once. Hooks you already have there are kept.
  install_stop_hook: false

tasks:
  # Task files larger than this go to failed/ unread (an integer in bytes, or like 512KiB, 1MiB).
  max_bytes: 1048576
  # A task file created in place (not renamed into the inbox) is read once it has been unchanged this long.
  settle: 100ms

# The Claude accounts, in failover order: when one runs out of quota the pool moves to the next.
# `home` becomes CLAUDE_CONFIG_DIR for the agents of that account; each account needs its own folder.
accounts:
  - name: primary
    home: ~/.claude-a
  - name: secondary
    home: ~/.claude-b

# Where the conversation folders (session-env, file-history, projects) that all accounts share live;
# each account's copies become links here, so a conversation survives a swap.
shared_dir: ~/.claude-shared

pool:
  # Sessions you run yourself on one project: cfo relaunches them on a swap but never sends them tasks.
  # For example:
  #   dedicated:
  #     - name: ccl-1-conformvault
  #       project: ~/src/conformvault
  dedicated: []
  # The sessions that take tasks from the queues: named <prefix><n> for n from start_index up to
  # start_index + max - 1. cfo keeps at least `min` of them running and never touches other sessions.
  autonomous:
    prefix: ccl-auto-
    start_index: 11
    min: 2
    max: 10

# Every folder here that contains .agent-queue/inbox is watched for tasks; `depends_on: [project:task]`
# names its projects.
projects_dir: ~/src

watcher:
  # How often the sessions are looked at when nothing else reports a change; while a task runs, four times
  # as often.
  interval: 1s
  # A task still running after this long is stopped and moved to failed/.
  idle_timeout: 60m
  # Where the done-signal files (agent-done-<session>) are written at the end of a turn.
  done_signal_dir: /tmp

quota:
  # How long an account that ran out of quota waits, once its reset time has passed, before it is used again.
  reactivate_cooldown: 5m
  # true: go back to the first account as soon as it is usable again, rather than staying on the current one.
  prefer_first: false

# Where cfo keeps its state and the event log (events.jsonl).
state_dir: ~/.local/state/cfo

delegation:
  # The job service that tasks marked `allow_delegation: true` may be sent to; null turns delegation off.
  # For example: url: https://jobs.example.com
  url: null
  # The environment variable holding its API key; delegation stays off while it is empty.
  api_key_env: SECUTOOLS_API_KEY
  # One request to the service, from connecting to the answer's last byte; a slower answer is cut off and the
  # request tried again.
  request_timeout: 10s
  # One call with all its tries and the pauses between them; a submit still unanswered then runs locally.
  call_timeout: 30s
  # A job not finished this long after its submit goes to failed/ with the reason (the service may still be
  # working on it: `cfo delegate get <job>` tells).
  job_timeout: 2h
  # A job whose status cfo does not know for this long is given up and the task runs locally.
  unknown_status_timeout: 10m
  # A result larger than this is not written into done/: the task goes to failed/ with the reason, and the
  # job service keeps the result (`cfo delegate result <job>`). An integer in bytes, or like 4MiB.
  max_result_bytes: 4MiB

watchdog:
  # A task blocked on its dependencies this long is reported, and after blocked_fail moved to failed/.
  blocked_warn: 1h
  blocked_fail: 24h
  # A working session whose screen has not changed for this long is marked stalled.
  stalled_after: 15m

status_api:
  # Read-only JSON status over HTTP as host:port, for example 127.0.0.1:8765; null turns it off.
  listen: null
  # true allows listening on an address other machines can reach.
  allow_remote: false

notifications:
  # A URL that gets a POST for swaps, exhausted accounts, failed tasks and stalled sessions; null for none.
  # For example: webhook: https://ntfy.sh/my-cfo-alerts
  webhook: null
  # json sends {"type": ..., ...}; ntfy sends plain text titled with the event type.
  webhook_format: json
  # true: also show desktop notifications through notify-send.
  desktop: false

janitor:
  # Files in done/ and failed/ older than this many days move to a dated archive folder.
  keep_days: 30
  # Task files waiting in an inbox longer than this are reported (never deleted).
  inbox_stale_after: 7d
  # events.jsonl is rotated past this size (an integer in bytes, or like 50MiB).
  events_max_bytes: 52428800

screen:
  # A YAML file that overrides or extends the shipped screen patterns, for when the agent's wording
  # changes before cfo is updated; null uses the shipped ones.
  patterns_file: null

# Several hosts sharing one account state and one queue over NATS JetStream
# (needs: pip install 'claude-failover[fleet]').
# null: this host works alone. To join a fleet, replace null with:
#   url: nats://127.0.0.1:4222   # a NATS server started with JetStream (nats-server -js)
#   host: box-1                  # this host's name in the fleet (default: the machine's name)
#   prefix: cfo                  # names of the fleet's buckets: two fleets can share one server
#   heartbeat: 2s                # how often this host publishes its snapshot and checks the account state
#   silent_after: 10s            # a host whose snapshot is older than this is shown silent
#   connect_timeout: 2s          # one connection attempt; failed ones are retried with backoff
#   ack_wait: 60s                # a fleet task not kept alive this long is delivered to another host
#   takeover_after: 2m           # a fleet task whose host is silent this long is run by another host
fleet: null
"""
