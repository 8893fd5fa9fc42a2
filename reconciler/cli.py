"""The command line: a thin shell over the stages."""

from __future__ import annotations

import logging
import os
import signal
import sys
import traceback
from functools import partial
from pathlib import Path
from typing import TYPE_CHECKING

import click

from . import installed_version
from .cache import cached_plan
from .diagnostics import Diagnostic, ReconcilerError, plural
from .gcpause import paused_gc
from .plan import Plan, PlanOptions, build_plan
from .planfile import dumps, plan_from_dict, plan_to_dict, read_saved_plan, write_saved_plan
from .render.escape import github_log, plain, stop_commands
from .render.github import render_github
from .render.jsonout import render_json
from .render.markdown import EnvironmentResult, render_comment
from .render.text import render_text
from .state.base import LockTimeout
from .state.deferred import open_deferred
from .state.location import DEFAULT_STATE

if TYPE_CHECKING:
    from .apply import ApplyResult
    from .state.base import StateStore

# Commands import what only they need (apply, export, render, the loader and
# the models, SQLAlchemy) inside their functions: a plan served from the cache
# must start fast (see README, Performance).

ENV_DIR = click.Path(exists=True, file_okay=False, path_type=Path)
log = logging.getLogger("reconciler")


class Main(click.Group):
    """Turns every expected failure into a message and exit code 1, never a traceback."""

    def main(self, *args, **kwargs):
        # Usage errors exit 1 too: under --detailed-exitcode, 2 must only mean "changes".
        try:
            return super().main(*args, standalone_mode=False, **kwargs)
        except click.ClickException as exc:
            exc.show()
            sys.exit(1)
        except click.exceptions.Abort:
            click.echo("aborted", err=True)
            sys.exit(1)

    def invoke(self, ctx):
        signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))  # unwind: locks are released
        try:
            return super().invoke(ctx)
        except ReconcilerError as exc:
            print_diagnostics(exc.diagnostics)
        except LockTimeout as exc:
            click.echo(f"error: the state is locked by another apply ({exc}) — wait for it to "
                       "finish or pass --lock-timeout SECONDS to wait", err=True)
        except BrokenPipeError:  # `reconciler plan | head`: the reader has gone
            sys.stderr.close()
            os._exit(1)
        except KeyboardInterrupt:
            click.echo("interrupted", err=True)
            sys.exit(130)
        except (click.ClickException, click.exceptions.Exit, click.exceptions.Abort):
            raise  # usage errors: shown by `main`
        except Exception as exc:  # noqa: BLE001 - a bug: say so in one line, details with -v
            _report_unexpected(exc)
        sys.exit(1)


def _report_unexpected(exc: Exception) -> None:
    """A failure of the state store in one line; anything else is a bug."""
    errors = sys.modules.get("sqlalchemy.exc")  # not loaded: no SQLAlchemy error was raised
    if errors is not None and isinstance(exc, errors.SQLAlchemyError):
        from .state.sql import short_reason

        click.echo(f"error: state store failed: {short_reason(exc)}", err=True)
        return
    # The message of an unexpected exception may quote any value, a secret
    # too: only its type and where it was raised are shown.
    log.debug("internal error %s, raised at:\n%s", type(exc).__name__,
              "".join(traceback.format_tb(exc.__traceback__)).rstrip())
    click.echo(f"internal error: {type(exc).__name__} — this is a bug in "
               "reconciler; rerun with -v for where it happened and report it", err=True)


def print_diagnostics(diagnostics: list[Diagnostic], strict: bool = False) -> None:
    for diagnostic in diagnostics:
        text = str(diagnostic)
        if strict and not diagnostic.is_error:
            text = text.replace("warning: ", "error (--strict): ", 1)
        click.echo(github_log(text), err=True)  # stderr is parsed for workflow commands too


state_option = click.option(
    "--state", "state_url", envvar="RECONCILER_STATE",
    help=f"State URL: sqlite:///PATH or postgresql://USER@HOST/DB (env RECONCILER_STATE; "
         f"default {DEFAULT_STATE}, except in CI).")


def require_state(state_url: str | None) -> str:
    """The state URL; in CI (env CI set) one must be given: an unset secret (fork and
    Dependabot pull requests, protected variables) must not plan against an empty state."""
    if state_url:
        return state_url
    if os.environ.get("CI", "").lower() not in ("", "0", "false"):
        raise ReconcilerError(
            "no state configured, and CI is set — set RECONCILER_STATE (a CI secret or "
            "variable, e.g. postgresql://USER@HOST/DB) or pass --state; if the secret exists, "
            "this job cannot read it (fork or Dependabot pull request, protected variable). "
            f"To use a local state in CI on purpose, pass --state {DEFAULT_STATE}")
    return DEFAULT_STATE


def _print_version(ctx: click.Context, value: bool) -> None:
    """As click's version_option prints it, without reading package metadata at every start."""
    if value and not ctx.resilient_parsing:
        click.echo(f"reconciler, version {installed_version()}")
        ctx.exit()


def open_state(state_url: str | None, *, create: bool = False, deferred: bool = False
               ) -> StateStore:
    """The store of the state URL; a state made now (the default location, or `init`)
    is announced, so a plan against a new empty state is never mistaken for a real one.
    `deferred`: an existing SQLite state is opened through SQLAlchemy only when it is
    read beyond its version (a plan served from the cache)."""
    url = require_state(state_url)
    default = url == DEFAULT_STATE
    store = open_deferred(url, default=default) if deferred else None
    if store is None:
        from .state.sql import open_store

        store = open_store(url, create=create, default=default)
    if store.created:
        click.echo(f"Created a new empty state at {plain(store.url_for_display)} "
                   f"(id {store.identity()}).", err=True)
    return store


adopt_option = click.option(
    "--adopt", is_flag=True,
    help="Take over declared objects that another environment owns, or that no environment "
         "owns yet (the plan shows each as an owner change).")


EXIT_CODES = """\b
Exit codes:
  0  success (with --detailed-exitcode: no changes)
  1  any error, invalid manifests, a rejected or refused plan, a cancelled apply
  2  changes to apply (plan --detailed-exitcode only)"""


@click.group(cls=Main, context_settings={"help_option_names": ["-h", "--help"],
                                         "max_content_width": 100},
             epilog=EXIT_CODES + "\n\nDocumentation: docs/README.md in the repository.")
@click.option("--version", is_flag=True, expose_value=False, is_eager=True,
              callback=lambda ctx, _, value: _print_version(ctx, value),
              help="Show the version and exit.")
@click.option("-v", "--verbose", count=True,
              help="Log each step on stderr (-vv: with debugging details).")
def main(verbose: int) -> None:
    """Declarative config-as-code for cloud-PBX provisioning.

    Manifests (YAML) describe accounts, base packages, sites, tenants, users and
    extensions; 'plan' shows what would change on the platform, 'apply' makes
    exactly those changes. Run 'reconciler COMMAND -h' for a command's options.
    """
    level = {0: logging.WARNING, 1: logging.INFO}.get(verbose, logging.DEBUG)
    logging.basicConfig(level=level, format="reconciler: %(message)s", stream=sys.stderr)


@main.command(epilog=EXIT_CODES, short_help="Check manifests against the format and rules.")
@click.argument("envs", nargs=-1, required=True, type=ENV_DIR)
@click.option("--strict", is_flag=True, help="Treat warnings as errors.")
def validate(envs: tuple[Path, ...], strict: bool) -> None:
    """Check environment directories ENVS against the manifest format and rules.

    Needs no state and no secret values. Every problem is reported, as
    'file:line: what is wrong — how to fix it'.
    """
    from .validate import validate_environment

    failed = False
    for env in envs:
        _, diagnostics = validate_environment(env)
        print_diagnostics(diagnostics.sorted(), strict)
        bad = diagnostics.has_errors(strict)
        failed |= bad
        errors, warnings = len(diagnostics.errors), len(diagnostics.warnings)
        click.echo(f"{plain(env)}: {'invalid' if bad else 'valid'} "
                   f"({plural(errors, 'error')}, {plural(warnings, 'warning')})")
    sys.exit(1 if failed else 0)


FORMATS = ["text", "markdown", "json", "github"]


def _append_step_summary(markdown: str) -> None:
    summary = os.environ.get("GITHUB_STEP_SUMMARY")
    if summary:
        with open(summary, "a", encoding="utf-8") as handle:
            handle.write(markdown + "\n")


MAX_DELETE_HELP = ("With --allow-delete: refuse a plan that deletes more than this percentage "
                   "of a kind's resources in scope (kinds with 10 or more resources).")


@main.command(epilog=EXIT_CODES, short_help="Show what apply would change.")
@click.argument("envs", nargs=-1, required=True, type=ENV_DIR)
@state_option
@click.option("--out", type=click.Path(dir_okay=False, path_type=Path),
              help="Save the plan to this file, for 'reconciler apply FILE'.")
@click.option("--format", "output_format", type=click.Choice(FORMATS), default="text",
              show_default=True, help="markdown: one pull-request comment for all ENVS (within "
              "GitHub's 65,536 characters); json: the documented plan format "
              "(schemas/plan.schema.json); github: text plus workflow commands that annotate "
              "the diff, and the markdown in the job summary.")
@click.option("--detailed-exitcode", is_flag=True,
              help="Exit 0 when there is nothing to apply (resources left alone included), "
                   "2 when there are changes, 1 on error.")
@click.option("--allow-delete", is_flag=True,
              help="Delete resources in scope that the manifests no longer declare.")
@click.option("--max-delete-percent", type=click.FloatRange(0, 100), default=10.0,
              show_default=True, help=MAX_DELETE_HELP)
@click.option("--force", is_flag=True, help="Delete even above --max-delete-percent.")
@click.option("--strict", is_flag=True, help="Treat warnings as errors.")
@adopt_option
@click.option("--full-plan-url", envvar="RECONCILER_FULL_PLAN_URL",
              help="Where the full plan is (e.g. the CI run's artifacts): linked from a "
                   "markdown comment that had to be shortened.")
def plan(envs, state_url, out, output_format, detailed_exitcode, allow_delete,
         max_delete_percent, force, strict, adopt, full_plan_url) -> None:
    """Show what apply would change for environment directories ENVS.

    Compares the manifests with the state (the accounts they declare and what
    belongs to them) and lists creates, updates and deletes. Changes the platform
    forbids reject the plan. Nothing is changed.
    """
    if out and len(envs) != 1:
        raise ReconcilerError("--out saves the plan of one environment — run plan once per "
                              "environment")
    options = PlanOptions(allow_delete, max_delete_percent, force, strict, adopt)
    store = open_state(state_url, deferred=True)
    # Printing a large plan builds millions of short-lived objects without cycles:
    # with the collector on, its scans cost more than the printing (0.85 of 1.4 s
    # for the JSON of 100k actions). Frozen at the end: the collection at exit
    # need not scan the plan either.
    with paused_gc(freeze=True):
        _plan_and_print(envs, store, options, out, output_format, detailed_exitcode,
                        full_plan_url)


def _plan_and_print(envs, store, options: PlanOptions, out, output_format: str,
                    detailed_exitcode: bool, full_plan_url) -> None:
    results: list[EnvironmentResult] = []
    cache_writes: list = []  # done once the output is out
    build = partial(build_plan, memo=True)
    for env in envs:
        try:
            if out:  # a saved plan holds the full records: always computed afresh
                result = build(env, store, options)
            else:
                result = cached_plan(env, store, options, build, plan_from_dict, plan_to_dict,
                                     cache_writes)
            cache_writes.extend(result.later)
        except ReconcilerError as exc:  # this environment fails; the others are still planned
            print_diagnostics(exc.diagnostics)
            results.append(EnvironmentResult(str(env), failure=exc.diagnostics))
            continue
        result.close()  # the targets were read; plan writes nothing to them
        results.append(EnvironmentResult(str(env), result))
        if output_format == "text":
            click.echo(render_text(result, color=sys.stdout.isatty()), nl=False)
        elif output_format == "github":  # the runner must not run commands from user text
            text = "".join(github_log(line) + "\n" for line in render_text(result).splitlines())
            click.echo(stop_commands(text), nl=False)
        if out:
            _save(result, out, options)
    _print_collected(results, output_format, full_plan_url)
    outcomes = {r.env: _outcome(r.plan) if r.plan else "failed" for r in results}
    if len(envs) > 1:
        click.echo(_overall_summary(outcomes), err=output_format in ("json", "markdown"))
    sys.stdout.flush()
    for write in cache_writes:
        write()
    worst = 1 if "failed" in outcomes.values() else (2 if "changes" in outcomes.values() else 0)
    sys.exit(worst if (detailed_exitcode or worst == 1) else 0)


def _print_collected(results: list[EnvironmentResult], output_format: str,
                     full_plan_url: str | None) -> None:
    """The outputs that cover every environment at once: one comment, one JSON, one set of
    annotations (GitHub counts them per step)."""
    plans = [r.plan for r in results if r.plan]
    if output_format == "markdown":
        click.echo(render_comment(results, full_plan_url), nl=False)
    elif output_format == "json" and len(results) == 1 and plans:
        click.echo(render_json(plans[0]), nl=False)
    elif output_format == "json" and plans:
        click.echo(dumps([plan_to_dict(p) for p in plans]), nl=False)
    elif output_format == "github":
        _append_step_summary(render_comment(results, full_plan_url))
        click.echo(render_github(plans), nl=False)


def _save(result: Plan, out: Path, options: PlanOptions) -> None:
    """Save a plan with changes; a rejected or no-op plan leaves no plan file behind."""
    if (result.rejected or not result.has_changes) and out.exists():
        out.unlink()  # never leave an older, applicable plan behind
        click.echo(f"Removed the earlier plan {plain(out)}.", err=True)
    if not result.rejected and not result.has_changes:
        click.echo(f"Nothing to apply: no plan saved to {plain(out)}.", err=True)
        return
    try:
        write_saved_plan(result, out, options)  # refuses a rejected plan, saying why
    except OSError as exc:  # a full disk: the old file is gone too, no truncated plan is left
        out.unlink(missing_ok=True)
        raise ReconcilerError(f"cannot save the plan to {plain(out)}: {exc.strerror} — no plan "
                              "file was written (an earlier one was removed); free space or "
                              "choose another --out, and plan again") from None
    click.echo(f"Saved the plan to {plain(out)}; apply it with 'reconciler apply {plain(out)}'.",
               err=True)


def _outcome(result: Plan) -> str:
    if result.rejected:
        return "failed"
    return "changes" if result.has_changes else "no changes"


def _overall_summary(outcomes: dict[str, str]) -> str:
    counts = {k: sum(1 for v in outcomes.values() if v == k) for k in ("changes", "no changes", "failed")}
    failed = [env for env, v in outcomes.items() if v == "failed"]
    text = (f"Overall: {plural(len(outcomes), 'environment')} — {counts['changes']} with changes, "
            f"{counts['no changes']} without, {counts['failed']} failed")
    return text + (f" ({', '.join(failed)})" if failed else "") + "."


@main.command(epilog=EXIT_CODES, short_help="Apply a saved plan, or plan and apply environments.")
@click.argument("targets", nargs=-1, required=True,
                type=click.Path(exists=True, path_type=Path))
@state_option
@click.option("--auto-approve", is_flag=True,
              help="Apply environment directories without asking (CI).")
@click.option("--lock-timeout", type=click.FloatRange(0), default=0.0, show_default=True,
              help="Seconds to wait for another apply to finish (0: fail at once).")
@click.option("--allow-delete", is_flag=True,
              help="Delete resources in scope that the manifests no longer declare.")
@click.option("--max-delete-percent", type=click.FloatRange(0, 100), default=10.0,
              show_default=True, help=MAX_DELETE_HELP)
@click.option("--force", is_flag=True, help="Delete even above --max-delete-percent.")
@click.option("--strict", is_flag=True, help="Treat warnings as errors.")
@adopt_option
def apply(targets, state_url, auto_approve, lock_timeout, allow_delete, max_delete_percent,
          force, strict, adopt) -> None:
    """Apply a saved plan FILE, or plan and apply environment directories.

    A saved plan (from 'plan --out') is applied without asking: it was reviewed.
    It is refused when applying it now would do anything else than it shows.
    Given directories, apply plans them, shows the plan and asks for
    confirmation on a terminal (--auto-approve to skip); answering no exits 1.
    """
    from .apply import replan_saved

    saved = len(targets) == 1 and targets[0].is_file()
    env = None
    if not saved and any(t.is_file() for t in targets):
        raise ReconcilerError("give either one saved plan file or environment directories")
    options = PlanOptions(allow_delete, max_delete_percent, force, strict, adopt)
    if saved:
        saved_plan, saved_options = read_saved_plan(targets[0])
        env = saved_environment(saved_plan, targets[0])
    store = open_state(state_url)
    plans: list[Plan] = []
    try:
        with store.lock(lock_timeout):
            if saved:
                plans.append(replan_saved(saved_plan, env, store, options, saved_options))
                ok = _apply_one(plans[0], store)
            else:
                ok = _plan_and_apply_each(targets, store, options, auto_approve, plans)
    finally:
        for item in plans:  # the target connections the plans read and apply wrote through
            item.close()
    sys.exit(0 if ok else 1)


def _plan_and_apply_each(envs, store, options: PlanOptions, auto_approve: bool,
                         plans: list[Plan]) -> bool:
    """Plan and apply one environment after the other, all under the one lock.

    Each plan is made after the previous environment was applied, so it sees
    what that one wrote (numbers, sub-accounts): planning all first would check
    every environment against a state that no longer exists when it is applied.
    """
    applied = []
    for position, env in enumerate(envs):
        item = build_plan(env, store, options)
        plans.append(item)
        click.echo(render_text(item, color=sys.stdout.isatty()), nl=False)
        if item.rejected:
            _not_applied(envs[position:], applied)
            return False
        if not item.has_changes:
            continue
        _confirm(auto_approve, applied)
        if not _apply_one(item, store):
            _not_applied(envs[position + 1:], applied)
            return False
        applied.append(item.env)
    return True


def _not_applied(rest, applied: list[str]) -> None:
    if len(rest) + len(applied) <= 1:
        return
    names = ", ".join(plain(str(env)) for env in rest)
    click.echo(f"Not applied: {names}." + (f" Applied before: {', '.join(map(plain, applied))}."
                                             if applied else ""), err=True)


def saved_environment(saved: Plan, plan_file: Path) -> Path:
    """The environment directory a saved plan names: relative to the current directory.

    `plan ENV --out FILE` records ENV relative to the directory it ran in (or
    absolute when ENV lies outside it); apply must run from the same directory,
    the repository root in CI.
    """
    env = Path(saved.env)
    if not env.is_dir():
        raise ReconcilerError(Diagnostic(
            None, f"the plan {plain(plan_file)} is for environment '{plain(saved.env)}', which is "
            f"not a directory under {plain(Path.cwd())}",
            "run apply from the directory plan ran in (the repository root)"))
    return env


@main.command(epilog=EXIT_CODES, short_help="Create a new empty state.")
@state_option
def init(state_url) -> None:
    """Create a new empty state at the state URL (--state or RECONCILER_STATE).

    Every other command refuses a SQLite path that does not exist (a typo must
    not become a new empty state); the default location is created on first use.
    An existing state is left as it is.
    """
    store = open_state(state_url, create=True)
    if not store.created:
        click.echo(f"A state already exists at {plain(store.url_for_display)} (id "
                   f"{store.identity()}, serial {store.version()[0]}); nothing changed.")


@main.command("render", epilog=EXIT_CODES, short_help="Print manifests after templating.")
@click.argument("env", type=ENV_DIR)
def render_command(env: Path) -> None:
    """Print the manifests of ENV after templates and overrides.

    The output is YAML that validates and plans like ENV itself. Secrets are
    printed as references, never as values: a plain-text secret becomes
    {env: RECONCILER_SECRET_…}, named on stderr.
    """
    from .loader import load_environment
    from .template import expand_templates, rendered_documents
    from .writer import dump_yaml

    loaded = load_environment(env)
    documents = expand_templates(loaded.documents, loaded.diagnostics)
    if loaded.diagnostics.has_errors():
        raise ReconcilerError(loaded.diagnostics.sorted())
    rendered, variables = rendered_documents(documents)
    click.echo(dump_yaml(rendered), nl=False)
    if variables:
        click.echo(f"note: {plural(len(variables), 'plain-text secret')} printed as "
                   "references; to plan the output, export "
                   + ", ".join(variables) + " with the values from the manifests", err=True)


@main.command(epilog=EXIT_CODES, short_help="Write manifests from the state.")
@state_option
@click.option("--account", help="Customer number: export its account family.")
@click.option("--tenant", help="Tenant name: export it with what it needs.")
@click.option("--to", "target", required=True, type=click.Path(file_okay=False, path_type=Path),
              help="Directory to write the manifests into.")
@click.option("--force", is_flag=True, help="Overwrite files that exist in the directory.")
def export(state_url, account, tenant, target, force) -> None:
    """Write manifests from the current state into a directory.

    A plan of the written files shows no change once the secrets are in
    place: they are written as the references they were applied from
    ({env: NAME}, {file: PATH}), which README.md in the directory lists.
    Logos are written next to the manifests. Existing files are only
    overwritten with --force.
    """
    if (account is None) == (tenant is None):
        raise ReconcilerError("give exactly one of --account N or --tenant NAME")
    from .export import export as export_manifests

    store = open_state(state_url)
    try:
        files = export_manifests(store, target, account=account, tenant=tenant, force=force)
    except OSError as exc:  # each file is written whole or not at all (files.write_private)
        raise ReconcilerError(f"cannot write the export to {plain(target)}: {exc.strerror} — "
                              "free space or choose another --to, and export again") from None
    for path in files:
        click.echo(f"wrote {plain(path)}")


def _confirm(auto_approve: bool, applied: list[str]) -> None:
    if auto_approve:
        return
    if not sys.stdin.isatty():
        raise ReconcilerError("apply needs confirmation: run it on a terminal or pass "
                              "--auto-approve (CI), or apply a reviewed saved plan")
    if not click.confirm("Apply these changes?", default=False):
        if applied:
            raise ReconcilerError("apply cancelled; nothing more was changed (applied before: "
                                  f"{', '.join(map(plain, applied))})")
        raise ReconcilerError("apply cancelled; nothing was changed")


def _apply_one(plan: Plan, store) -> bool:
    from .apply import apply_plan

    total = len(plan.actions)
    if total > 50 and sys.stderr.isatty():
        from rich.progress import Progress

        with Progress(transient=True) as progress:
            task = progress.add_task(f"Applying {plan.env}", total=total)
            result = apply_plan(plan, store, lambda n: progress.advance(task, n))
    else:
        result = apply_plan(plan, store)
    _report(plan, result)
    return result.ok


def _report(plan: Plan, result: ApplyResult) -> None:
    counts = {k: sum(1 for a in result.done if a.action == k) for k in ("create", "update", "delete")}
    done = f"{counts['create']} created, {counts['update']} updated, {counts['delete']} deleted"
    if result.ok:
        click.echo(f"Apply complete for {plain(plan.env)}: {done}. State serial {result.serial}.")
        return
    failed = result.failed
    click.echo(
        plain(f"error: apply of {plan.env} failed at {failed.action} {failed.kind} {failed.id}: "
              f"{result.error}") + "\n"
        f"  done: {len(result.done)} ({done}); failed: 1; "
        f"not started: {len(result.not_started)}\n"
        "  The state holds every action marked done; run 'reconciler plan' to see what is left.",
        err=True)

