"""The command line: ``kvmcheck check | replay | list``.

Exit codes: 0 no bug (or, with --all, every verdict as expected), 1 bug
(or an unexpected verdict), 2 a usage or model-file error -- printed as one
line, never a traceback.
"""

from __future__ import annotations

import json
import sys
from typing import Any

import click

from kvmcheck import _cliguard
from kvmcheck._engine.check import STRATEGIES, Result, check, replay
from kvmcheck._engine.finding import UsageError
from kvmcheck._engine.scenario import Scenario
from kvmcheck._loader import bundled, load_file, resolve, scenarios_in
from kvmcheck.report.text import render_result


def _emit(obj: Any) -> None:
    click.echo(json.dumps(obj, indent=2), file=_cliguard.stdout())  # not the model's print()s


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
def main() -> None:
    """kvmcheck: explore every interleaving of a kernel model, with the kernel's own checks."""


def _run_one(s: Scenario, variant: str | None, opts: dict[str, Any]) -> Result:
    return check(
        s,
        strategy=opts["strategy"],
        max_executions=opts["max_executions"],
        max_seconds=opts["max_seconds"],
        seed=opts["seed"],
        variant=variant,
        max_steps=opts["max_steps"],
        kcsan=opts["kcsan"],
        step_timeout_s=opts.get("step_timeout", 10.0),
    )


def _pairs(scns: list[Scenario], variant: str | None) -> list[tuple[Scenario, str | None]]:
    out: list[tuple[Scenario, str | None]] = []
    for s in scns:
        if variant is not None:
            out.append((s, variant))
        elif s.variants:
            out.extend((s, v) for v in s.variants)
        else:
            out.append((s, None))
    return out


@main.command("check")
@click.argument("target", required=False)
@click.option("--variant", "-V", help="Variant of the model (see `kvmcheck list`).")
@click.option("--all", "run_all", is_flag=True, help="Check every bundled scenario x variant.")
@click.option("--strategy", type=click.Choice(STRATEGIES), default="dpor", show_default=True)
@click.option("--max-executions", type=click.IntRange(min=1), default=None)
@click.option("--max-seconds", type=click.FloatRange(min=0, min_open=True), default=None)
@click.option("--max-steps", type=click.IntRange(min=1), default=20_000, show_default=True)
@click.option("--seed", type=int, default=0, show_default=True)
@click.option(
    "--step-timeout",
    type=float,
    default=10.0,
    show_default=True,
    help="Seconds of pure Python with no kernel operation before a thread is reported stuck.",
)
@click.option(
    "--kcsan/--no-kcsan",
    default=None,
    help="Force the plain-access checks (KCSAN, locking contract) on or off.",
)
@click.option("--json", "as_json", is_flag=True, help="Print JSON instead of text.")
@click.option("--html", "html_path", type=click.Path(dir_okay=False), help="Also write an HTML report.")
def check_cmd(
    target: str | None, variant: str | None, run_all: bool, as_json: bool, html_path: str | None, **opts: Any
) -> None:
    """Check FILE.py[::SCENARIO], a bundled SCENARIO, or --all bundled ones."""
    if run_all == bool(target):
        raise UsageError("give exactly one of TARGET (FILE.py[::SCENARIO] or a bundled scenario) and --all")
    _cliguard.begin(as_json, {"--html": html_path})  # outputs checked now; SIGINT/SIGTERM stop cleanly
    scns = bundled() if run_all else resolve(target or "")
    results = []
    for s, v in _pairs(scns, variant):
        if _cliguard.interrupted():
            break
        r = _run_one(s, v, opts)
        results.append((s, v, r))
        if not as_json and not run_all:
            click.echo(render_result(r))
            if r.finding is not None:
                click.echo(
                    f"replay: kvmcheck replay {_replay_target(target or '', s)}"
                    + (f" --variant {v}" if v else "")
                    + f" '{r.finding.schedule}'"
                )
    if html_path:
        from kvmcheck.report.html import write_html

        _cliguard.write_atomic(write_html, html_path, [r for _, _, r in results])
    if run_all:
        _finish_all(results, as_json)
        return
    if as_json:
        out = [r.as_dict() for _, _, r in results]
        _emit(out[0] if len(out) == 1 else out)
    sys.exit(_cliguard.exit_code(1 if any(r.verdict == "bug" for _, _, r in results) else 0))


def _replay_target(target: str, s: Scenario) -> str:
    """What to pass to `kvmcheck replay`: FILE.py::SCENARIO for a file, else the bundled name."""
    if target.endswith(".py") or "::" in target:
        return f"{target.partition('::')[0]}::{s.name}"
    return s.name


def _finish_all(results: list[tuple[Scenario, str | None, Result]], as_json: bool) -> None:
    rows = []
    ok = True
    for s, v, r in results:
        expected = s.expect.get(v) if v in s.expect else s.expect.get(None)
        match = expected is None or expected == r.verdict
        ok &= match
        rows.append({**r.as_dict(), "expect": expected, "as_expected": match})
    if as_json:
        _emit(rows)
    else:
        from kvmcheck.report.table import render_table

        click.echo(render_table(rows))
        click.echo("all verdicts as expected" if ok else "SOME VERDICTS DIFFER FROM THEIR EXPECTATION")
    sys.exit(_cliguard.exit_code(0 if ok else 1))


@main.command("replay")
@click.argument("target")
@click.argument("schedule")
@click.option("--variant", "-V", help="Variant of the model.")
@click.option("--json", "as_json", is_flag=True)
def replay_cmd(target: str, schedule: str, variant: str | None, as_json: bool) -> None:
    """Re-run one SCHEDULE of TARGET exactly and print its finding."""
    scns = resolve(target)
    if len(scns) != 1:
        raise UsageError(f"{target} holds {len(scns)} scenarios; name one with FILE.py::SCENARIO")
    _cliguard.begin(as_json, {})
    r = replay(scns[0], schedule, variant=variant)
    if as_json:
        _emit(r.as_dict())
    else:
        click.echo(render_result(r))
    sys.exit(1 if r.verdict == "bug" else 0)


@main.command("list")
@click.argument("file", required=False)
@click.option("--json", "as_json", is_flag=True)
def list_cmd(file: str | None, as_json: bool) -> None:
    """List scenarios (bundled, or in FILE) with each variant's expected verdict."""
    scns = scenarios_in(load_file(file)) if file else bundled()
    rows: list[dict[str, Any]] = []
    for s in scns:
        if s.variants:
            rows.extend({"scenario": s.name, "variant": v, "expect": s.expect[v]} for v in s.variants)
        else:
            rows.append({"scenario": s.name, "variant": None, "expect": s.expect.get(None)})
    if as_json:
        _emit(rows)
        return
    for row in rows:
        click.echo(f"{row['scenario']:40} {row['variant'] or '-':16} {row['expect'] or '-'}")


def run() -> None:
    """Entry point: one line and exit 2 for every user mistake."""
    try:
        main(standalone_mode=False)
    except click.exceptions.Exit as e:
        sys.exit(e.exit_code)
    except (click.Abort, KeyboardInterrupt):
        sys.exit(130)
    except click.UsageError as e:
        msg = e.format_message().replace("\n", " ")
        click.echo(
            f"kvmcheck: error: {msg} (see kvmcheck {e.ctx.info_name if e.ctx else ''} --help)", err=True
        )
        sys.exit(2)
    except UsageError as e:
        click.echo(f"kvmcheck: error: {e}", err=True)
        sys.exit(2)


if __name__ == "__main__":
    run()
