"""Accounts: which one a swap moves to, when the earliest limit resets, and recording a limit hit."""

from __future__ import annotations

from engine.config import Account, Config
from engine.state import AccountState, State


def next_usable(config: Config, state: State, current: str | None, now: float) -> Account | None:
    """The first account after `current`, in config order and wrapping round, usable at `now`."""
    names = [a.name for a in config.accounts]
    start = names.index(current) + 1 if current in names else 0
    for i in range(len(names)):
        account = config.accounts[(start + i) % len(names)]
        if account.name != current and state.account_usable(account.name, now):
            return account
    return None


def earliest_reset(state: State) -> float | None:
    times = [a.usable_again_at for a in state.accounts.values() if a.usable_again_at is not None]
    return min(times) if times else None


def mark_exhausted(state: State, account: str, until: float) -> None:
    state.accounts.setdefault(account, AccountState(name=account)).usable_again_at = until
