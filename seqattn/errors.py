"""User errors: one line, `error: <what> (<where>): <how to fix>`, exit code 2."""

from __future__ import annotations


class UserError(Exception):
    """A mistake the user can fix: bad config, bad path, bad input."""

    exit_code = 2

    def __init__(self, what: str, where: str = "", fix: str = "") -> None:
        self.what, self.where, self.fix = what, where, fix
        super().__init__(self.message())

    def message(self) -> str:
        text = f"error: {self.what}"
        if self.where:
            text += f" ({self.where})"
        if self.fix:
            text += f": {self.fix}"
        # One line, whatever the user's key, value or path holds.
        return text.replace("\r", "\\r").replace("\n", "\\n")


class RunFailed(Exception):
    """A run that started correctly but failed (e.g. diverged): exit code 1."""

    exit_code = 1


class Interrupted(Exception):
    """SIGINT/SIGTERM after what could be saved was saved: exit code 130."""

    exit_code = 130
