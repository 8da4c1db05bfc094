"""The links from every account home to the shared conversation folders: checked, created when missing."""

from __future__ import annotations

import logging
import os
import shlex
import stat
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

from engine.config import Config

log = logging.getLogger(__name__)

# The folders Claude Code keeps a conversation in; shared, a conversation begun under one account can be
# resumed under another.
LINKED = ("session-env", "file-history", "projects")

ProblemKind = Literal[
    "target_missing",
    "link_missing",
    "home_missing",
    "home_not_dir",
    "home_unreadable",
    "target_not_dir",
    "target_dangling",
    "wrong_target",
    "real_dir",
    "not_a_link",
    "unreadable",
    "create_failed",
]

# What `ensure_links` repairs; everything else needs a person, because repairing it could lose conversations.
FIXABLE: frozenset[ProblemKind] = frozenset({"target_missing", "link_missing"})
# Problems with an account home itself; its links are not looked at then.
HOME_KINDS: frozenset[ProblemKind] = frozenset({"home_missing", "home_not_dir", "home_unreadable"})


@dataclass(frozen=True)
class SymlinkProblem:
    """One thing wrong with a link or a shared folder; `key` is its key path (`accounts[0].home/projects`)."""

    account: str | None
    path: Path
    kind: ProblemKind
    message: str
    key: str

    @property
    def fixable(self) -> bool:
        return self.kind in FIXABLE


@dataclass(frozen=True)
class EnsureResult:
    """What `ensure_links` created (shared folders and links) and what it left for a person to sort out."""

    created: list[Path] = field(default_factory=list)
    problems: list[SymlinkProblem] = field(default_factory=list)


def _q(path: Path) -> str:
    return shlex.quote(str(path))


def _lstat(path: Path) -> os.stat_result | None:
    """The entry itself (a link is not followed); None when there is none. Other OSErrors propagate."""
    try:
        return os.lstat(path)
    except (FileNotFoundError, NotADirectoryError):
        return None


def _is_empty(folder: Path) -> bool:
    try:
        with os.scandir(folder) as entries:
            return next(entries, None) is None
    except OSError:
        return False


def _inspect_target(config: Config, name: str) -> SymlinkProblem | None:
    target = config.shared_dir / name
    key = f"shared_dir/{name}"
    try:
        # Followed: shared_dir/projects may itself be a link to a bigger disk, and that is fine.
        st = os.stat(target)
    except (FileNotFoundError, NotADirectoryError):
        if os.path.islink(target):
            # Creating the folder it names could fill a mount point whose disk is merely not mounted.
            message = (
                f"{target} links to {os.readlink(target)}, which does not exist; create that folder, "
                "or remove the link and cfo creates the folder"
            )
            return SymlinkProblem(None, target, "target_dangling", message, key)
        return SymlinkProblem(
            None, target, "target_missing", f"{target} does not exist yet (cfo creates it)", key
        )
    except OSError as exc:
        return SymlinkProblem(None, target, "unreadable", f"cannot look at {target}: {exc.strerror}", key)
    if not stat.S_ISDIR(st.st_mode):
        message = f"{target} is not a folder; move it away (mv {_q(target)} {_q(target)}.old)"
        return SymlinkProblem(None, target, "target_not_dir", message, key)
    return None


def _inspect_link(account: str, link: Path, target: Path, key: str) -> SymlinkProblem | None:
    try:
        st = _lstat(link)
    except OSError as exc:
        return SymlinkProblem(account, link, "unreadable", f"cannot look at {link}: {exc.strerror}", key)
    if st is None:
        message = f"{link} is not linked to {target} yet (cfo creates the link)"
        return SymlinkProblem(account, link, "link_missing", message, key)
    if stat.S_ISLNK(st.st_mode):
        # realpath resolves a relative target against the link's own folder, as the kernel does, and lets
        # two spellings of one folder (through a linked parent, say) compare equal.
        if os.path.realpath(link) == os.path.realpath(target):
            return None
        raw = os.readlink(link)
        points_at = Path(os.path.normpath(link.parent / raw))
        shown = raw if points_at == Path(raw) else f"{raw} ({points_at})"
        message = (
            f"{link} links to {shown}, not to {target}; left as it is: move any conversations from "
            f"{points_at} into {target}, then relink it (ln -sfn {_q(target)} {_q(link)})"
        )
        return SymlinkProblem(account, link, "wrong_target", message, key)
    if stat.S_ISDIR(st.st_mode):
        if _is_empty(link):
            message = (
                f"{link} is an empty folder, not a link to {target}; remove it (rmdir {_q(link)}) "
                "and cfo creates the link"
            )
        else:
            # The usual state of an account that was used before the failover setup.
            message = (
                f"{link} is a real folder, not a link to {target}; move what it holds into the shared one "
                f"(mkdir -p {_q(target)} && cp -a {_q(link)}/. {_q(target)}/ "
                f"&& mv {_q(link)} {_q(link)}.old), and cfo creates the link"
            )
        return SymlinkProblem(account, link, "real_dir", message, key)
    what = "a file" if stat.S_ISREG(st.st_mode) else "neither a folder nor a link"
    message = f"{link} is {what}, not a link to {target}; move it away (mv {_q(link)} {_q(link)}.old)"
    return SymlinkProblem(account, link, "not_a_link", message, key)


def inspect(config: Config) -> list[SymlinkProblem]:
    """Every problem with the shared folders and every account's links, in config order; changes nothing.

    The shared folders come first, so that `ensure_links` creates a target before the links to it.
    """
    problems = [p for p in (_inspect_target(config, name) for name in LINKED) if p is not None]
    for i, account in enumerate(config.accounts):
        home_key = f"accounts[{i}].home"
        try:
            st = os.stat(account.home)
        except (FileNotFoundError, NotADirectoryError):
            message = (
                f"{account.home} does not exist; create it by logging in to this account "
                f"(CLAUDE_CONFIG_DIR={_q(account.home)} {config.agent.command})"
            )
            problems.append(SymlinkProblem(account.name, account.home, "home_missing", message, home_key))
            continue
        except OSError as exc:
            message = f"cannot look at {account.home}: {exc.strerror}"
            problems.append(SymlinkProblem(account.name, account.home, "home_unreadable", message, home_key))
            continue
        if not stat.S_ISDIR(st.st_mode):
            message = f"{account.home} is not a folder"
            problems.append(SymlinkProblem(account.name, account.home, "home_not_dir", message, home_key))
            continue
        for name in LINKED:
            problem = _inspect_link(
                account.name, account.home / name, config.shared_dir / name, f"{home_key}/{name}"
            )
            if problem is not None:
                problems.append(problem)
    return problems


def _create(problem: SymlinkProblem, target: Path) -> SymlinkProblem | None:
    """Repair one fixable problem; the problem that stops it, if any."""
    try:
        if problem.kind == "target_missing":
            problem.path.mkdir(parents=True, exist_ok=True)
        else:
            os.symlink(target, problem.path)
    except OSError as exc:
        message = f"cannot create {problem.path}: {exc.strerror or exc}"
        return SymlinkProblem(problem.account, problem.path, "create_failed", message, problem.key)
    return None


def ensure_links(config: Config) -> EnsureResult:
    """Create the missing shared folders and links; report everything else, leaving it exactly as found.

    A link that points elsewhere is never corrected: the folder it points at may hold conversations that
    only a person can decide where to put. Logs what it creates and each problem left.
    """
    result = EnsureResult()
    for problem in inspect(config):
        if not problem.fixable:
            result.problems.append(problem)
            continue
        target = config.shared_dir / problem.path.name
        failure = _create(problem, target)
        if failure is not None:
            result.problems.append(failure)
        elif problem.kind == "target_missing":
            log.info("created the shared folder %s", problem.path)
            result.created.append(problem.path)
        else:
            log.info("linked %s -> %s", problem.path, target)
            result.created.append(problem.path)
    for problem in result.problems:
        log.warning("%s: %s", problem.key, problem.message)
    return result
