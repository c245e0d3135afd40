"""User errors (seqattn/errors.py): one line `error: <what> (<where>): <fix>`, and the exit codes."""

from __future__ import annotations

from seqattn.errors import Interrupted, RunFailed, UserError


def test_message_names_what_where_and_the_fix():
    error = UserError("run dir not found", "runs/x", "pass the --run-dir used for training")
    assert error.message() == "error: run dir not found (runs/x): pass the --run-dir used for training"
    assert str(error) == error.message()
    assert UserError("bad").message() == "error: bad"
    assert UserError("bad", fix="do this").message() == "error: bad: do this"


def test_message_is_one_line_whatever_the_parts_hold():
    message = UserError("unknown key 'a\nb'", "file\r\nname.yaml", "fix\nit").message()
    assert "\n" not in message and "\r" not in message
    assert message == "error: unknown key 'a\\nb' (file\\r\\nname.yaml): fix\\nit"


def test_exit_codes():
    assert (UserError.exit_code, RunFailed.exit_code, Interrupted.exit_code) == (2, 1, 130)
