"""The ``gaitwatch`` command line: the daemon (``run``), config checking, the demo, and offline tools.

Exit codes: 0 success; 1 a runtime failure named on stderr; 2 bad command-line usage; 78 (EX_CONFIG) an invalid
configuration, with the key path and the bad value on stderr.
"""

from __future__ import annotations

import argparse
import importlib
import sys
from pathlib import Path
from typing import Final, get_args

from gaitwatch.daemon import __version__
from gaitwatch.daemon.redact import redact_text
from gaitwatch.daemon.settings import EX_CONFIG, ConfigError, load_settings
from gaitwatch.pose.blazepose import BlazePoseSettings, ModelVariant


def _cmd_check_config(args: argparse.Namespace) -> int:
    from gaitwatch.daemon.config_checks import check_references, config_warnings

    try:
        settings = load_settings(args.config)
    except ConfigError as exc:
        sys.stderr.write(f"gaitwatch: {exc}\n")
        return EX_CONFIG
    problems = check_references(settings)
    if problems:
        sys.stderr.write(
            f"gaitwatch: {args.config} names files that are missing or unusable:\n"
            + "".join(f"  {redact_text(p)}\n" for p in problems)
        )
        return EX_CONFIG
    for warning in config_warnings(settings):
        sys.stderr.write(f"gaitwatch: warning: {warning}\n")
    # Redacted: camera URLs may carry credentials, and this line lands in the journal (ExecStartPre=).
    cameras = ", ".join(f"{c.id}={redact_text(c.source)}" for c in settings.cameras)
    mqtt = f"{settings.mqtt.host}:{settings.mqtt.port}" if settings.mqtt.enabled else "off"
    sys.stdout.write(
        f"{args.config}: OK — site={settings.service.site} host={settings.service.host} "
        f"cameras=[{cameras}] detector={settings.detector.kind} pose={settings.pose.model} mqtt={mqtt}\n"
    )
    return 0


def _cmd_run(args: argparse.Namespace) -> int:
    try:
        settings = load_settings(args.config)
    except ConfigError as exc:
        sys.stderr.write(f"gaitwatch: {exc}\n")
        return EX_CONFIG
    from gaitwatch.daemon.service import run_service

    return run_service(settings, args.config)


def _cmd_demo(args: argparse.Namespace) -> int:
    from gaitwatch.tools.demo import DemoOptions, run_demo

    return run_demo(
        DemoOptions(
            video=args.video,
            fps=args.fps,
            render=args.render,
            model=args.model,
            quiet=args.quiet,
        )
    )


def build_parser(command: str | None = None) -> argparse.ArgumentParser:
    """The command-line parser; ``command`` (the sub-command about to run) limits the tools imported for it."""
    parser = argparse.ArgumentParser(
        prog="gaitwatch",
        description="Watch how people walk on a ward: camera -> tracks -> pose -> gait metrics -> MQTT.",
    )
    parser.add_argument("--version", action="version", version=f"gaitwatch {__version__}")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    run = sub.add_parser("run", help="run the daemon (as systemd does)")
    run.add_argument("--config", type=Path, required=True, help="TOML config file")
    run.set_defaults(func=_cmd_run)

    check = sub.add_parser("check-config", help="validate a config file (exit 78 if invalid)")
    check.add_argument("config", type=Path)
    check.set_defaults(func=_cmd_check_config)

    demo = sub.add_parser(
        "demo", help="run the real pipeline on a shipped clip of walking people against a local MQTT broker"
    )
    demo.add_argument("--video", type=Path, help="your own clip instead of the shipped one")
    demo.add_argument("--fps", type=float, help="the clip's real frame rate if its container misreports it")
    demo.add_argument("--render", type=Path, help="write an annotated video (boxes, ids, skeletons, cadence)")
    demo.add_argument("--model", choices=get_args(ModelVariant), default=BlazePoseSettings().model, help="pose model")
    demo.add_argument("--quiet", action="store_true", help="print only the summary line")
    demo.set_defaults(func=_cmd_demo)

    for name in _tools_to_register(command):
        module = importlib.import_module(f"gaitwatch.tools.cmd_{name.replace('-', '_')}")
        module.register(sub)
    return parser


# The daemon's own commands, declared above; every other command is an offline tool in ``cmd_<name>``.
CORE_COMMANDS: Final = ("run", "check-config", "demo")
# Offline tools (evaluation, training, replay, ...), each in its own module ``gaitwatch.tools.cmd_<name>`` (dashes
# as underscores) whose ``register`` adds exactly that sub-command. Only the tool being run is imported:
# importing them all put scikit-learn, the benchmark and the review app into every ``gaitwatch run`` on a ward
# PC (measured: +45 MB peak RSS, +3 s start-up on the 2-core machine).
TOOL_COMMANDS: Final = (
    "bench",
    "calibrate",
    "record",
    "replay",
    "report",
    "synth",
    "train-gait",
    "eval-gait",
    "eval-pose",
    "eval-mot",
    "eval-detect",
    "distill",
    "outbox",
    "agreement",
    "review",
)


def _tools_to_register(command: str | None) -> tuple[str, ...]:
    """The tool sub-commands the parser needs for ``command``: that tool alone, none for a daemon command, all
    of them for ``--help`` or a name that is neither (so argparse lists every choice in its error)."""
    if command in TOOL_COMMANDS:
        return (command,)
    if command in CORE_COMMANDS:
        return ()
    return TOOL_COMMANDS


def main(argv: list[str] | None = None) -> int:
    words = sys.argv[1:] if argv is None else argv
    parser = build_parser(next((w for w in words if not w.startswith("-")), None))
    args = parser.parse_args(words)
    code: int = args.func(args)
    return code


if __name__ == "__main__":
    sys.exit(main())
