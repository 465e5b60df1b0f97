"""Re-run every command a findings page quotes and refresh the figures it quotes.

The pages quote exact execution and step counts, which move whenever the
engine or a model changes; tests/models/test_pfncache.py checks the page
against the tool, and this script brings the page back in line:

    .venv/bin/python docs/findings/regenerate.py docs/findings/pfncache-retry-check-outside-lock.md

A quoted output line is matched to the new output by its text up to its first
figure; a replay command gets the schedule of the check just before it; the
"`seed-v1`: N executions, `seed-v2`: M executions" sentence gets each variant's count.
"""

from __future__ import annotations

import re
import shlex
import sys
import tempfile
from pathlib import Path

from click.testing import CliRunner

from kvmcheck.cli import main as cli_main

FIGURE = re.compile(r"[\d(]")


def run(cmd: str) -> list[str]:
    args = shlex.split(cmd)
    assert args[0] == "kvmcheck", cmd
    # a fresh failure database: the page quotes what the search prints, not a saved replay
    env = {"KVMCHECK_DB": tempfile.mkdtemp(prefix="kvmcheck-db-")}
    return CliRunner(env=env).invoke(cli_main, args[1:]).output.splitlines()


def stem(line: str) -> str:
    m = FIGURE.search(line)
    return line[: m.start()] if m else line


def refresh(text: str) -> str:
    out: list[str] = []
    in_console = False
    current: list[str] = []
    last_schedule = ""
    for line in text.splitlines():
        if line.startswith("```"):
            in_console = line.strip() == "```console"
            out.append(line)
            continue
        if in_console and line.startswith("$ "):
            cmd = line[2:]
            if cmd.startswith("kvmcheck replay") and last_schedule:
                cmd = re.sub(r"'[^']*'\s*$", f"'{last_schedule}'", cmd)
            current = run(cmd)
            for o in current:
                m = re.search(r"kvmcheck replay .*'([^']+)'", o)
                if m:
                    last_schedule = m.group(1)
            out.append("$ " + cmd)
            continue
        if in_console and line.strip() and current:
            new = next((o for o in current if stem(o) == stem(line)), line)
            out.append(new)
            continue
        out.append(line)
    text = "\n".join(out) + "\n"
    for variant in ("seed-v1", "seed-v2"):
        text = re.sub(
            rf"(`(?:--variant )?{variant}`: )\d+ executions",
            lambda m, v=variant: f"{m.group(1)}{mmu_notifier_executions(v)} executions",
            text,
        )
    return text


def mmu_notifier_executions(variant: str) -> int:
    """The count behind "(`--variant seed-v1`: N executions, `seed-v2`: M executions)"."""
    first = run(f"kvmcheck check pfncache.mmu_notifier --variant {variant}")[0]
    m = re.search(r"\((\d+) executions", first)
    assert m, first
    return int(m.group(1))


if __name__ == "__main__":
    for path in sys.argv[1:]:
        p = Path(path)
        p.write_text(refresh(p.read_text()))
        print(f"refreshed {path}")
