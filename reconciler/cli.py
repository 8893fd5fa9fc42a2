"""The command line: a thin shell over the stages."""

from __future__ import annotations

import sys
from pathlib import Path

import click

from .diagnostics import Diagnostic, ReconcilerError
from .validate import validate_environment

ENV_DIR = click.Path(exists=True, file_okay=False, path_type=Path)


def print_diagnostics(diagnostics: list[Diagnostic], strict: bool = False) -> None:
    for diagnostic in diagnostics:
        text = str(diagnostic)
        if strict and not diagnostic.is_error:
            text = text.replace("warning: ", "error (--strict): ", 1)
        click.echo(text, err=True)


@click.group()
@click.version_option(package_name="reconciler")
def main() -> None:
    """Declarative config-as-code for cloud-PBX provisioning."""


@main.command()
@click.argument("envs", nargs=-1, required=True, type=ENV_DIR)
@click.option("--strict", is_flag=True, help="Treat warnings as errors.")
def validate(envs: tuple[Path, ...], strict: bool) -> None:
    """Check environments against the manifest format and rules."""
    failed = False
    for env in envs:
        _, diagnostics = validate_environment(env)
        print_diagnostics(diagnostics.sorted(), strict)
        bad = diagnostics.has_errors(strict)
        failed |= bad
        errors, warnings = len(diagnostics.errors), len(diagnostics.warnings)
        status = "invalid" if bad else "valid"
        click.echo(f"{env}: {status} ({errors} errors, {warnings} warnings)")
    sys.exit(1 if failed else 0)


def run() -> None:  # pragma: no cover - console entry point
    main()
