"""Resume-id files (`<resume_dir>/<session>-resume-id.txt`): what a session's next launch resumes."""

from __future__ import annotations

import logging
from pathlib import Path

from engine.atomic import atomic_write
from engine.launch import valid_resume_id

log = logging.getLogger(__name__)

RESUME_ATTEMPTS = 2  # failed launches with one saved resume id before it is dropped


class ResumeIds:
    """Reads, saves and consumes the saved resume ids (blocking file calls: run them in a thread)."""

    def __init__(self, resume_dir: Path) -> None:
        self.resume_dir = resume_dir
        self._failures: dict[str, int] = {}

    def path(self, session: str) -> Path:
        return self.resume_dir / f"{session}-resume-id.txt"

    def save(self, session: str, value: str) -> bool:
        """Write the session's resume id where the next launch (or the operator, after a crash) finds it."""
        path = self.path(session)
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            atomic_write(path, value + "\n", 0o600)
        except OSError as exc:
            log.error("%s: cannot save the resume id %s: %s", path, value, exc.strerror)
            return False
        return True

    def forget(self, session: str) -> None:
        path = self.path(session)
        try:
            path.unlink(missing_ok=True)
        except OSError as exc:
            log.warning("%s: cannot remove a resume id no longer known: %s", path, exc.strerror)

    def get(self, session: str) -> str | None:
        """The session's saved resume id; it stays saved until a launch with it goes through."""
        path = self.path(session)
        try:
            value = path.read_text(encoding="utf-8").strip()
        except OSError:
            return None
        if not valid_resume_id(value):
            path.unlink(missing_ok=True)
            log.warning("%s: not a session UUID (%r); ignored", path, value[:60])
            return None
        return value

    def used(self, session: str, value: str, launched: bool) -> None:
        """Consume the resume id once a launch with it went through; after RESUME_ATTEMPTS failed
        launches it is dropped too, as the agent may be refusing it."""
        key = f"{session}:{value}"
        path = self.path(session)
        if not launched:
            failures = self._failures.get(key, 0) + 1
            self._failures[key] = failures
            if failures < RESUME_ATTEMPTS:
                log.info("%s: kept for the next launch of %s", path, session)
                return
            log.warning("%s: %d launches with it failed; dropped", path, failures)
        self._failures.pop(key, None)
        try:
            current = path.read_text(encoding="utf-8").strip()
        except OSError:
            return
        if current == value:  # a newer id saved meanwhile is the next launch's
            try:
                path.unlink(missing_ok=True)
            except OSError as exc:
                log.warning("%s: cannot remove the used resume id: %s", path, exc.strerror)
