"""The command line: every command teaches with --help, bad input is a message, not a traceback."""

from __future__ import annotations

import dataclasses

import pytest

from varnet import cli
from varnet.core.config import from_dict
from varnet.core.errors import VarnetError


@pytest.mark.parametrize("command", sorted(cli.COMMANDS))
def test_every_command_has_help(command, capsys):
    with pytest.raises(SystemExit) as exit_info:
        cli.main([command, "--help"])
    assert exit_info.value.code == 0
    out = capsys.readouterr().out
    assert f"varnet {command}" in out
    assert len(out.splitlines()) > 5, "help text should explain the command, not just list flags"


def test_missing_params_file_is_a_message_not_a_traceback(tmp_path, capsys):
    code = cli.main(["--params", str(tmp_path / "nope.yaml"), "split"])
    assert code == 2
    err = capsys.readouterr().err
    assert "nope.yaml" in err and "Traceback" not in err


def test_unknown_params_key_is_rejected():
    @dataclasses.dataclass
    class Section:
        length: int = 200

    assert from_dict(Section, {"length": 100}).length == 100
    with pytest.raises(VarnetError, match="unknown key.*lenght"):
        from_dict(Section, {"lenght": 100}, where="sequences")


def test_params_overlays_merge_key_by_key(tmp_path):
    from varnet.core.config import load_params

    base = tmp_path / "params.yaml"
    base.write_text("cuts:\n  min_epochs: 200\n  mag_range: [11, 17]\nsplit:\n  by: star\n")
    overlay = tmp_path / "overlay.yaml"
    overlay.write_text("cuts:\n  min_epochs: 100\n  mag_range: null\n")
    merged = load_params([base, overlay])
    assert merged == {"cuts": {"min_epochs": 100, "mag_range": None}, "split": {"by": "star"}}
