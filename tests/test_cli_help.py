"""Every ``memnet`` command renders its help (argparse expands % in help strings)."""

from __future__ import annotations

import pytest

from memnet_cli import _COMMAND_MODULES, main

COMMANDS = [name.rsplit(".", 1)[1] for name in _COMMAND_MODULES]


def test_top_level_help_lists_every_command(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exited:
        main(["--help"])
    assert exited.value.code == 0
    out = capsys.readouterr().out
    missing = [command for command in COMMANDS if command not in out]
    assert not missing, f"memnet --help does not list {missing}"


@pytest.mark.parametrize("command", COMMANDS)
def test_each_command_help_renders(command: str, capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exited:
        main([command, "--help"])
    assert exited.value.code == 0
    assert f"memnet {command}" in capsys.readouterr().out
