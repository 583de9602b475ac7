"""`stedi sim radio` and `stedi sim board` on a port that is taken: one message naming the way
out, exit 2, no traceback; the board's --id help reads as the default it is."""

from __future__ import annotations

import socket

import pytest

from tests.gateway.simboard import gateway_env, stedi


@pytest.mark.parametrize(("command", "what"), [(["sim", "radio"], "radio"), (["sim", "board"], "virtual board")])
def test_a_busy_port_is_one_clear_error(command: list[str], what: str, tmp_path: object) -> None:
    with socket.create_server(("127.0.0.1", 0)) as taken:
        listen = f"127.0.0.1:{taken.getsockname()[1]}"
        extra = ["--flash", f"{tmp_path}/flash"] if what != "radio" else []
        run = stedi(*command, "--listen", listen, *extra, env=gateway_env(), timeout=60)
    assert run.returncode == 2, run.stderr
    assert f"the {what} cannot listen on {listen}: the port is already in use" in run.stderr
    assert "--listen 127.0.0.1:0" in run.stderr and "Traceback" not in run.stderr and "unexpected" not in run.stderr


def test_board_id_help_names_its_default() -> None:
    out = stedi("sim", "board", "--help", env=gateway_env(COLUMNS="200")).stdout
    assert "Default: board-PORT, PORT being the --listen port." in out and "board-." not in out
