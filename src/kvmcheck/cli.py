"""The command line: ``kvmcheck check | replay | list``.

Exit codes: 0 no bug (or every verdict as its scenario expects), 1 a bug (or
a verdict that differs from its expectation), 2 a usage or model-file error --
printed as one line, never a traceback -- or a search that could not finish (a
worker process died: the result so far is printed first), 3 a model stuck in a
call the checker cannot interrupt (its stack is printed), 130/143 when stopped by
SIGINT/SIGTERM (also with --checkpoint, which still saves the search).
"""

from __future__ import annotations

import json
import os
import sys
import time
from collections.abc import Iterator
from typing import Any

import click

from kvmcheck import __version__, _cliguard
from kvmcheck._engine import guard
from kvmcheck._engine.check import STRATEGIES, Result, replay
from kvmcheck._engine.confirm import Counterexample, confirm
from kvmcheck._engine.finding import UsageError
from kvmcheck._engine.parallel import default_workers
from kvmcheck._engine.scenario import Scenario
from kvmcheck._engine.settings import BACKENDS, Settings
from kvmcheck._engine.target import Target
from kvmcheck._loader import bundled, load_file, resolve, scenarios_in
from kvmcheck._pool import map_ordered
from kvmcheck.patching import Patch, load_patch, patched_pairs, replay_command, replay_pair
from kvmcheck.report import database as db
from kvmcheck.report.json_report import result_json
from kvmcheck.report.text import render_result, terminal_width
from kvmcheck.run import Checked, Output, run_one

EXIT_CODES = """\b
Exit codes:
  0  no bug, or every verdict as its scenario's expect= says
  1  a bug, or a verdict that differs from its expectation
  2  a usage or model-file error (one line on stderr), or a worker process
     that died (one line naming its job, after the result so far)
  3  model code stuck in a C call the checker cannot interrupt (see below)
  130  stopped by SIGINT (Ctrl-C); 143 stopped by SIGTERM: the result so far
     is printed (and --checkpoint saved); a second signal exits at once

\b
What the checker cannot stop:
  Model code blocked inside a C call -- time.sleep(), a blocking recv(), a
  threading.Lock taken twice -- cannot be interrupted: --max-seconds,
  --step-timeout and the first Ctrl-C take effect only when the call
  returns.  Three seconds after one of them should have stopped it, kvmcheck
  prints the stuck thread's Python stack and exits (3; 130/143 after a
  signal) without a result.  Keep models to kernel operations and plain
  Python."""

MAIN_EPILOG = f"""\b
Examples:
  kvmcheck list                                   bundled scenarios and variants
  kvmcheck check --all                            every bundled scenario x variant
  kvmcheck check pfncache.seed_race -V v6.8       one bundled scenario
  kvmcheck check my_model.py                      every scenario of a file vs its expect=
  kvmcheck replay --last                          the last counterexample again

{EXIT_CODES}

Environment: NO_COLOR (no colour), COLUMNS (report width), KVMCHECK_DB (failure database,
default .kvmcheck/)."""

CHECK_EPILOG = f"""\b
Examples:
  kvmcheck check pfncache.seed_race --variant v6.8
  kvmcheck check pfncache.seed_race -V v6.8 --full --html report.html
  kvmcheck check my_model.py                  compare each scenario x variant with expect=
  kvmcheck check my_model.py::racy --strategy pct --max-executions 5000
  kvmcheck check --all --json > results.json
  kvmcheck check pfncache.seed_race --patch mypatch.py:MyFix   a patch class on its base variant
  kvmcheck check --all --patch mypatch.py:MyFix   every bundled scenario x variant it applies to

{EXIT_CODES}"""

REPLAY_EPILOG = f"""\b
Examples:
  kvmcheck replay pfncache.seed_race -V v6.8 '0x141-1x34-2x32-1x21-0-2-3x24'
  kvmcheck replay my_model.py::racy '0x3-1x2-2'
  kvmcheck replay --last                      the last counterexample saved in .kvmcheck/

{EXIT_CODES}"""


def _color_on(stream: Any = None) -> bool:
    """Colour only on a terminal, and never when NO_COLOR is set (https://no-color.org)."""
    if os.environ.get("NO_COLOR"):
        return False
    s = stream if stream is not None else sys.stdout
    return bool(getattr(s, "isatty", lambda: False)())


_VERDICT_COLOURS = {"bug": "red", "ok": "green", "bounded": "yellow"}


def _paint(text: str, verdict: str) -> str:
    if not _color_on():
        return text
    return click.style(text, fg=_VERDICT_COLOURS.get(verdict), bold=verdict == "bug")


class ProgressLine:
    """A progress line on stderr, on a terminal only: executions, executions/s, elapsed, estimate."""

    def __init__(self, label: str) -> None:
        self.label = label
        self.on = bool(getattr(sys.stderr, "isatty", lambda: False)())
        self.last = 0.0
        self.shown = False

    def __call__(self, p: Any) -> None:
        now = time.monotonic()
        if not self.on or now - self.last < 0.2:
            return
        self.last = now
        n, el = int(getattr(p, "executions", 0)), float(getattr(p, "elapsed_s", 0.0))
        est = getattr(p, "estimate_total", None)
        rate = n / el if el > 0 else 0.0
        line = f"{self.label}: {n} executions, {rate:.0f}/s, {el:.1f}s"
        if est:
            line += f", ~{100 * n / est:.0f}% of an estimated {est:.0f}"
        sys.stderr.write("\r" + line[: terminal_width(sys.stderr) - 1] + "\x1b[K")
        sys.stderr.flush()
        self.shown = True

    def done(self) -> None:
        if self.shown:
            sys.stderr.write("\r\x1b[K")
            sys.stderr.flush()
            self.shown = False


@click.group(context_settings={"help_option_names": ["-h", "--help"]}, epilog=MAIN_EPILOG)
@click.version_option(__version__, "--version", prog_name="kvmcheck", message="%(prog)s %(version)s")
def main() -> None:
    """kvmcheck: explore every interleaving of a kernel model, with the kernel's own checks."""


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


def _is_file(target: str) -> bool:
    return target.endswith(".py") or "::" in target


@main.command("check", epilog=CHECK_EPILOG)
@click.argument("target", required=False)
@click.option("--variant", "-V", help="Variant of the model (see `kvmcheck list`); default: every variant.")
@click.option(
    "--all",
    "run_all",
    is_flag=True,
    help="Check every bundled scenario x variant (or every one in TARGET=FILE.py) against its "
    "expect=, one table row each as it finishes.",
)
@click.option(
    "--strategy", type=click.Choice(STRATEGIES), default="dpor", show_default=True, help="Search strategy."
)
@click.option("--max-executions", type=click.IntRange(min=1), default=None, help="Stop after N executions.")
@click.option(
    "--max-seconds", type=click.FloatRange(min=0, min_open=True), default=None, help="Stop after S seconds."
)
@click.option(
    "--max-steps", type=click.IntRange(min=1), default=20_000, show_default=True, help="Steps per execution."
)
@click.option("--seed", type=int, default=0, show_default=True, help="Seed of the random and pct strategies.")
@click.option(
    "--kcsan/--no-kcsan",
    default=None,
    help="Force the plain-access checks (KCSAN, locking contract) on or off (default: the scenario's).",
)
@click.option(
    "--keep-going",
    is_flag=True,
    help="Go on searching after a WARN-class finding (WARN_ON, lockdep, KCSAN) instead of stopping.",
)
@click.option(
    "--memory-model",
    type=click.Choice(["sc", "lkmm"]),
    default=None,
    help="Run under sequential consistency or the Linux-kernel memory model (default: the scenario's).",
)
@click.option(
    "--minimise/--no-minimise",
    default=True,
    show_default=True,
    help="Shrink a counterexample to the fewest preemptions, then steps (--no-minimise keeps the first).",
)
@click.option(
    "--checkpoint",
    type=click.Path(dir_okay=False),
    default=None,
    help="Save the dpor search's state to this file as it goes (and at the end), to --resume later.",
)
@click.option(
    "--checkpoint-every",
    type=click.FloatRange(min=0, min_open=True),
    default=60.0,
    show_default=True,
    help="Seconds between two --checkpoint saves.",
)
@click.option(
    "--resume",
    type=click.Path(dir_okay=False, exists=True),
    default=None,
    help="Go on with the dpor search saved by --checkpoint in this file.",
)
@click.option(
    "--workers",
    type=click.IntRange(min=1),
    default=None,
    help="Worker processes for the dpor search (default: one, and every core once a search "
    "passes 2,000 executions; same verdict and count either way).  With several scenario x "
    "variant pairs (--all, a FILE.py): how many pairs run side by side, each on one worker "
    "(default: every core).",
)
@click.option(
    "--backend",
    type=click.Choice(BACKENDS),
    default="local",
    show_default=True,
    help="Where the workers run: processes here, or a Ray cluster (--address).",
)
@click.option("--address", default=None, help="The Ray cluster's address (HOST:PORT), with --backend ray.")
@click.option("--full", is_flag=True, help="Show every step of the counterexample, not only the story.")
@click.option(
    "--step-timeout",
    type=click.FloatRange(min=0, min_open=True),
    default=10.0,
    show_default=True,
    help="Seconds of pure Python with no kernel operation before a thread is reported stuck.",
)
@click.option(
    "--db/--no-db",
    "use_db",
    default=True,
    show_default=True,
    help="Replay the saved counterexample first and save new ones (.kvmcheck/, or $KVMCHECK_DB).",
)
@click.option("--json", "as_json", is_flag=True, help="Print a JSON list of results instead of text.")
@click.option(
    "--html", "html_path", type=click.Path(dir_okay=False), help="Also write an HTML report to this file."
)
@click.option(
    "--patch",
    "patch_spec",
    metavar="FILE.py:CLASS",
    help="Run your patch -- a subclass of the variant class it applies to -- on every scenario x "
    "variant whose build holds that class, beside the base variant's verdict (exit 1 if a patched "
    "run has a bug).",
)
def check_cmd(
    target: str | None,
    variant: str | None,
    run_all: bool,
    as_json: bool,
    html_path: str | None,
    full: bool,
    keep_going: bool,
    minimise: bool,
    use_db: bool,
    checkpoint: str | None,
    checkpoint_every: float,
    resume: str | None,
    step_timeout: float,
    patch_spec: str | None,
    **opts: Any,
) -> None:
    """Check FILE.py[::SCENARIO], a bundled SCENARIO, or --all bundled ones.

    A single scenario exits 1 when it has a bug.  A whole FILE.py (or --all)
    compares each scenario x variant with its declared expect= and exits 0
    when all match, 1 when one differs (listing which).
    """
    if not run_all and not target:
        raise UsageError("give a TARGET (FILE.py, FILE.py::SCENARIO or a bundled scenario) or --all")
    if run_all and target and not target.endswith(".py"):
        raise UsageError("--all takes no scenario: give --all alone, or --all FILE.py")
    # outputs checked now; SIGINT/SIGTERM stop cleanly
    _cliguard.begin(as_json, {"--html": html_path, "--checkpoint": checkpoint})
    scns = bundled() if not target else resolve(target)
    origin = target.partition("::")[0] if target and _is_file(target) else ""
    whole = run_all or bool(target and target.endswith(".py"))  # compare with expect=
    pairs = _pairs(scns, variant)
    patch = load_patch(patch_spec) if patch_spec else None
    twins = patched_pairs(patch, pairs) if patch is not None else []
    # each patched pair right after its base; no failure database (a patched variant is no bundled one)
    if twins:
        if opts["backend"] != "local":
            raise UsageError("--patch runs on the local backend only (the patch class is not sent to Ray)")
        pairs = [p for t in twins for p in ((t.scenario, t.variant), (t.patched, t.patched_variant))]
    if (checkpoint or resume) and len(pairs) != 1:
        raise UsageError(
            f"--checkpoint/--resume save one search: name one scenario x variant (got {len(pairs)})"
        )
    # several pairs on the local backend run side by side, --workers of them, each on one worker
    jobs = opts["workers"] or default_workers()
    side_by_side = len(pairs) > 1 and jobs > 1 and opts["backend"] == "local"
    settings = Settings(  # the one Settings of this run: every pair's search gets it unchanged
        strategy=opts["strategy"],
        max_executions=opts["max_executions"],
        max_seconds=opts["max_seconds"],
        max_steps=opts["max_steps"],
        seed=opts["seed"],
        kcsan=opts["kcsan"],
        keep_going=True if keep_going else None,
        memory_model=opts["memory_model"],
        checkpoint=checkpoint,
        checkpoint_every_s=checkpoint_every,
        resume=resume,
        step_timeout_s=step_timeout,
        workers=1 if side_by_side else opts["workers"],
        backend=opts["backend"],
        address=opts["address"],
    )
    output = Output(
        minimise=minimise, use_db=use_db and not twins, full=full, as_json=as_json, html=html_path
    )
    targets = [Target(s, v, origin or None) for s, v in pairs]
    table = _Table(targets[1::2] if twins else targets, base=bool(twins)) if run_all and not as_json else None
    done: list[Checked] = []
    bases: list[Checked] = []
    anns: list[Any] = []
    width = terminal_width()
    for c in _checked(targets, settings, output, jobs if side_by_side else 1):
        if twins and len(bases) == len(done):  # the base of the patched pair that comes next
            bases.append(c)
            continue
        done.append(c)
        ann = _annotate(c, settings) if html_path or (table is None and not as_json) else None
        anns.append(ann)
        if table is not None:
            table.row(c, bases[-1].result.verdict if twins else None)
        elif not as_json:
            _print_text(c, full, width, ann, patch)
            if twins:
                click.echo(f"base {bases[-1].variant}: {bases[-1].result.verdict}")
    if html_path:
        from kvmcheck.report.html import write_html

        roots = [os.path.dirname(os.path.abspath(origin))] if origin else []
        _cliguard.write_atomic(write_html, html_path, [c.result for c in done], anns, roots)
    if as_json:
        rows = [result_json(c) for c in done]
        for row, b in zip(rows, bases, strict=False):
            row["base_variant"], row["base_verdict"] = b.variant, b.result.verdict
        click.echo(json.dumps(rows, indent=2), file=_cliguard.stdout())
    errors = [c.result.error for c in [*bases, *done] if c.result.error]
    for err in errors:  # the search could not finish (a worker died): after the result so far
        click.echo(f"kvmcheck: error: {err}", err=True)
    if errors:
        sys.exit(_cliguard.exit_code(2))
    if twins:
        sys.exit(_cliguard.exit_code(1 if any(c.result.verdict == "bug" for c in done) else 0))
    if whole:
        differ = [c for c in done if not c.as_expected]
        if not as_json:
            if differ:
                click.echo(_paint("SOME VERDICTS DIFFER FROM THEIR EXPECTATION:", "bug"))
                for c in differ:
                    name = c.scenario.name + (f" [{c.variant}]" if c.variant else "")
                    click.echo(f"  {name}: expected {c.expected or 'no bug'}, got {c.result.verdict}")
            else:
                click.echo(_paint("all verdicts as expected", "ok"))
        sys.exit(_cliguard.exit_code(1 if differ else 0))
    sys.exit(_cliguard.exit_code(1 if any(c.result.verdict == "bug" for c in done) else 0))


def _checked(targets: list[Target], settings: Settings, output: Output, jobs: int) -> Iterator[Checked]:
    """Each target checked, in order.  Several targets are independent searches: with ``jobs``
    > 1 they run side by side, one forked process each, ``jobs`` at a time, each search on one
    worker -- the rows still come in order."""
    if jobs > 1:

        def one(i: int) -> tuple[Any, Any, bool]:
            guard.set_escalation(True)  # a model stuck in C ends this child; the parent names the pair
            c = run_one(targets[i], settings, output)
            return c.result, c.counterexample, c.from_db

        def name(i: int) -> str:
            t = targets[i]
            return t.scenario.name + (f" [{t.variant}]" if t.variant else "")

        for i, (result, cx, from_db) in enumerate(map_ordered(one, len(targets), jobs, name)):
            t, _ = settings.resolve(targets[i])
            yield Checked(t, result, cx, from_db)
            if _cliguard.interrupted():
                return
        return
    for t in targets:
        if _cliguard.interrupted():
            return
        prog = ProgressLine(t.scenario.name + (f" [{t.variant}]" if t.variant else ""))
        try:
            c = run_one(t, settings, output, on_progress=prog)
        finally:
            prog.done()
        yield c


def _annotate(c: Checked, settings: Settings) -> Counterexample | None:
    """The counterexample the report shows (None without a finding): the one the check confirmed,
    or a saved or replayed finding as its traced replay gave it (nothing runs again)."""
    if c.counterexample is not None or c.result.finding is None:
        return c.counterexample
    return confirm(c.target, c.result, settings, shrink=False)


def _print_text(
    c: Checked, full: bool, width: int, cx: Counterexample | None, patch: Patch | None = None
) -> None:
    r = c.result
    text = render_result(r, cx, full=full, width=width)
    first, _, rest = text.partition("\n")
    click.echo(_paint(first, r.verdict) + ("\n" + rest if rest else ""))
    cmd = c.replay_command() if patch is None else replay_command(c.replay_command(), patch)
    if cmd:
        click.echo(_wrap_command(f"replay: {cmd}", width))
    if c.expected is not None and not c.as_expected:
        click.echo(f"expected {c.expected}, got {r.verdict}")


def _wrap_command(text: str, width: int) -> str:
    """A long command on several lines joined by `` \\`` so a shell still takes it whole."""
    if len(text) <= width:
        return text
    lines, cur = [], ""
    for word in text.split(" "):
        if cur and len(cur) + 1 + len(word) > width - 2:
            lines.append(cur + " \\")
            cur = "    " + word
        else:
            cur = f"{cur} {word}" if cur else word
    return "\n".join([*lines, cur])


class _Table:
    """The --all table, one row printed as each check finishes."""

    HEAD = ("scenario", "variant", "expected", "verdict", "executions", "time")

    def __init__(self, targets: list[Target], base: bool = False) -> None:
        names = [t.scenario.name for t in targets]
        vs = [t.variant or "-" for t in targets]
        self.w = [
            max([len(x) for x in names] + [8]),
            max([len(x) for x in vs] + [7]),
            8,
            len("bug  <-- UNEXPECTED"),
            len("123456 (complete)"),
            7,
        ]
        self.head: tuple[str, ...] = self.HEAD
        if base:  # --patch: the bundled variant's verdict beside the patched one's
            self.head = (*self.HEAD[:3], "base verdict", *self.HEAD[3:])
            self.w.insert(3, len("base verdict"))
        click.echo(self._line(self.head))
        click.echo(self._line(tuple("-" * w for w in self.w)))

    def _line(self, cells: tuple[str, ...]) -> str:
        return "  ".join(c.ljust(w) for c, w in zip(cells, self.w, strict=True)).rstrip()

    def row(self, c: Checked, base_verdict: str | None = None) -> None:
        r = c.result
        verdict = r.verdict + ("" if c.as_expected else "  <-- UNEXPECTED")
        cells: tuple[str, ...] = (
            c.scenario.name,
            c.variant or "-",
            c.expected or "-",
            verdict,
            str(r.executions) + (" (complete)" if r.complete else ""),
            f"{r.elapsed_s:.2f}s",
        )
        if base_verdict is not None:
            cells = (*cells[:3], base_verdict, *cells[3:])
        line = self._line(cells)
        if _color_on():
            line = line.replace(verdict, _paint(verdict, r.verdict if c.as_expected else "bug"), 1)
        click.echo(line)


@main.command("replay", epilog=REPLAY_EPILOG)
@click.argument("target", required=False)
@click.argument("schedule", required=False)
@click.option("--variant", "-V", help="Variant of the model.")
@click.option("--last", is_flag=True, help="Replay the last counterexample saved in .kvmcheck/.")
@click.option("--full", is_flag=True, help="Show every step, not only the story.")
@click.option("--json", "as_json", is_flag=True, help="Print a JSON list of one result.")
@click.option("--patch", "patch_spec", metavar="FILE.py:CLASS", help="The patch the run was checked with.")
@click.option(
    "--memory-model",
    type=click.Choice(["sc", "lkmm"]),
    default=None,
    help="As given to check (default: the scenario's).",
)
def replay_cmd(
    target: str | None,
    schedule: str | None,
    variant: str | None,
    last: bool,
    full: bool,
    as_json: bool,
    patch_spec: str | None,
    memory_model: str | None,
) -> None:
    """Re-run one SCHEDULE of TARGET exactly and print its finding (or the last saved one: --last)."""
    if last:
        if target or schedule:
            raise UsageError("--last takes no TARGET or SCHEDULE")
        saved = db.last()
        if saved is None:
            raise UsageError(f"no saved counterexample in {db.root()}/ (run kvmcheck check first)")
        target, schedule, variant = saved.target, saved.schedule, saved.variant
    if not target or not schedule:
        raise UsageError("give TARGET and SCHEDULE (as printed after `replay:`), or --last")
    scns = resolve(target)
    if len(scns) != 1:
        raise UsageError(f"{target} holds {len(scns)} scenarios; name one with FILE.py::SCENARIO")
    patch = load_patch(patch_spec) if patch_spec else None
    scn = replay_pair(patch, scns[0], variant).patched if patch is not None else scns[0]
    _cliguard.begin(as_json, {})
    settings = Settings(memory_model=memory_model)
    t, settings = settings.resolve(
        Target(scn, variant, target.partition("::")[0] if _is_file(target) else None)
    )
    r = replay(t, schedule, settings)
    c = Checked(t, r)
    if as_json:
        click.echo(json.dumps([result_json(c)], indent=2), file=_cliguard.stdout())
    else:
        _print_text(c, full, terminal_width(), _annotate(c, settings), patch)
    sys.exit(1 if r.verdict == "bug" else 0)


@main.command("list")
@click.argument("file", required=False)
@click.option("--json", "as_json", is_flag=True, help="Print JSON rows instead of text.")
def list_cmd(file: str | None, as_json: bool) -> None:
    """List scenarios (bundled, or in FILE) with each variant's expected verdict."""
    scns = scenarios_in(load_file(file)) if file else bundled()
    rows: list[dict[str, Any]] = []
    for s in scns:
        variants: list[str | None] = list(s.variants) or [None]
        for v in variants:
            src = s.source_of(v)
            rows.append(
                {
                    "scenario": s.name,
                    "variant": v,
                    "expect": s.expect.get(v),
                    "provenance": src.provenance if src else None,
                    "source": src.source if src else None,
                    "note": src.note if src else None,
                    "scenario_source": s.source.as_dict() if s.source else None,
                }
            )
    if as_json:
        click.echo(json.dumps(rows, indent=2))
        return
    for row in rows:
        click.echo(
            f"{row['scenario']:40} {row['variant'] or '-':22} {row['expect'] or '-':8} "
            f"{row['provenance'] or '-':13} {row['source'] or '-'}"
        )


LITMUS_EPILOG = f"""\b
Examples:
  kvmcheck litmus MP+poonceonces.litmus          herd7's answer under the Linux-kernel memory model
  kvmcheck litmus --brief tests/*.litmus         states and verdicts only
  kvmcheck litmus --json SB.litmus

{EXIT_CODES}"""


@main.command("litmus", epilog=LITMUS_EPILOG)
@click.argument("files", nargs=-1, required=True)
@click.option("--json", "as_json", is_flag=True, help="Print a JSON list of results instead of text.")
@click.option("--brief", is_flag=True, help="No explanation (witness execution or forbidding cycle).")
def litmus(files: tuple[str, ...], as_json: bool, brief: bool) -> None:
    """Run C litmus tests under the LKMM; compare each with its Result: line (exit 1 if one differs)."""
    from kvmcheck.lkmm.cli import litmus_main

    sys.exit(litmus_main(list(files), as_json=as_json, brief=brief))


def _help_command(ctx: click.Context | None) -> str:
    """The command whose --help to see: ``kvmcheck`` or ``kvmcheck check`` (never the program
    name twice: the root context's name is the program's)."""
    path: list[str] = []
    while ctx is not None and ctx.parent is not None:  # the subcommands, up to the root
        path.insert(0, ctx.info_name or "")
        ctx = ctx.parent
    return " ".join(["kvmcheck", *path])


def run(argv: list[str] | None = None) -> None:
    """Entry point: one line and exit 2 for every user mistake."""
    try:
        main(args=argv, standalone_mode=False)
    except click.exceptions.Exit as e:
        sys.exit(e.exit_code)
    except (click.Abort, KeyboardInterrupt):
        click.echo("kvmcheck: interrupted", err=True)
        sys.exit(130)
    except click.UsageError as e:
        msg = e.format_message().replace("\n", " ")
        click.echo(f"kvmcheck: error: {msg} (see {_help_command(e.ctx)} --help)", err=True)
        sys.exit(2)
    except UsageError as e:
        click.echo(f"kvmcheck: error: {e}", err=True)
        sys.exit(2)


__all__ = ["Result", "main", "run"]

if __name__ == "__main__":
    run()
