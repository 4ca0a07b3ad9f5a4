"""The command line: each tool is imported only when it runs, and every command stays reachable."""

from __future__ import annotations

import subprocess
import sys

import pytest

from gaitwatch.tools.cli import CORE_COMMANDS, TOOL_COMMANDS, build_parser


def _subcommands(command: str | None) -> set[str]:
    parser = build_parser(command)
    (sub,) = (a for a in parser._actions if a.dest == "command")
    assert sub.choices is not None
    return set(sub.choices)


@pytest.mark.parametrize("command", ["run", "check-config"])
def test_the_daemon_commands_import_no_offline_tool(command: str) -> None:
    """``gaitwatch run`` on a ward PC must not carry scikit-learn, the benchmark or the review app."""
    probe = (
        "import sys; from gaitwatch.tools.cli import build_parser; "
        f"build_parser({command!r}); "
        "print(' '.join(sorted(m for m in sys.modules if m.startswith('gaitwatch.tools.cmd_') or m == 'sklearn')))"
    )
    done = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, timeout=120, check=True)
    assert done.stdout.strip() == ""


@pytest.mark.parametrize("tool", TOOL_COMMANDS)
def test_each_tool_module_registers_exactly_its_own_command(tool: str) -> None:
    assert _subcommands(tool) == {*CORE_COMMANDS, tool}


def test_help_lists_every_command() -> None:
    assert _subcommands(None) == {*CORE_COMMANDS, *TOOL_COMMANDS}
    done = subprocess.run(
        [sys.executable, "-m", "gaitwatch.tools.cli", "--help"], capture_output=True, text=True, timeout=120, check=True
    )
    assert all(name in done.stdout for name in (*CORE_COMMANDS, *TOOL_COMMANDS))


def test_a_misspelt_command_is_refused_listing_the_real_ones() -> None:
    done = subprocess.run(
        [sys.executable, "-m", "gaitwatch.tools.cli", "eval-mots"], capture_output=True, text=True, timeout=120
    )
    assert done.returncode == 2 and "invalid choice: 'eval-mots'" in done.stderr and "eval-mot" in done.stderr
