"""Every bundled verdict, owned by the tests (issue 23, /work/wt/PROVENANCE.md).

Each seed has ``tests/models/verdicts_<seed>.py`` with ``VERDICTS``: rows of (scenario,
variant, "ok" | "bug" | "bounded", the kernel fact the verdict rests on).  A model and its
``expect=`` cannot change together unseen: the table here must equal every bundled
scenario's ``expect=``, both ways, seed by seed.  Every bundled pair also says where its
code was read (a ``Source`` for the variant and for the scenario), and the one parametrised
check over all bundled pairs (slow tier) confirms each expectation by exhaustive search.
"""

from __future__ import annotations

import collections
import importlib
import json
import os
import pathlib
import re
import subprocess
import sys
from types import ModuleType
from typing import Any

import pytest

from kvmcheck import PROVENANCES, check
from kvmcheck._engine.scenario import Scenario
from kvmcheck._loader import BUNDLED_PACKAGE, bundled, bundled_modules, scenarios_in

HERE = pathlib.Path(__file__).parent
SEEDS = sorted(m.rsplit(".", 1)[1] for m in bundled_modules())  # one scenarios module per seed
VERDICTS_FILES = sorted(p.stem for p in HERE.glob("verdicts_*.py"))
Row = tuple[str, str, str, str]


def seed_scenarios(seed: str) -> list[Scenario]:
    return scenarios_in(importlib.import_module(f"{BUNDLED_PACKAGE}.{seed}"))


def verdicts_module(seed: str) -> ModuleType | None:
    try:
        return importlib.import_module(f"tests.models.verdicts_{seed}")
    except ModuleNotFoundError:
        return None


def expected_pairs(seed: str) -> dict[tuple[str, str], str]:
    out: dict[tuple[str, str], str] = {}
    for s in seed_scenarios(seed):
        for v in s.variants:
            out[(s.name, v)] = s.expect[v]
    return out


def diff(table: dict[tuple[str, str], str], expect: dict[tuple[str, str], str]) -> str:
    """A readable account of where the reviewed table and the bundled expect= differ."""
    lines = []
    for k in sorted(set(table) - set(expect)):
        lines.append(f"  only in the verdicts table: {k[0]} [{k[1]}] = {table[k]}")
    for k in sorted(set(expect) - set(table)):
        lines.append(f"  only in expect=:            {k[0]} [{k[1]}] = {expect[k]}")
    for k in sorted(set(table) & set(expect)):
        if table[k] != expect[k]:
            lines.append(f"  differs: {k[0]} [{k[1]}]: table {table[k]!r}, expect= {expect[k]!r}")
    return "\n".join(lines)


# -- the tables themselves -------------------------------------------------------------------------
def test_every_verdicts_file_is_a_bundled_seed() -> None:
    assert [
        f.removeprefix("verdicts_") for f in VERDICTS_FILES if f.removeprefix("verdicts_") not in SEEDS
    ] == []


@pytest.mark.parametrize("seed", SEEDS)
def test_verdicts_table_equals_expect(seed: str) -> None:
    """The seed's reviewed table is exactly its scenarios' expect=, both ways."""
    mod = verdicts_module(seed)
    assert mod is not None, f"tests/models/verdicts_{seed}.py is missing (VERDICTS for seed {seed})"
    rows: tuple[Row, ...] = mod.VERDICTS
    keys = [(r[0], r[1]) for r in rows]
    dups = [k for k, n in collections.Counter(keys).items() if n > 1]
    assert dups == [], f"seed {seed}: rows given twice: {dups}"
    for r in rows:
        assert len(r) == 4 and all(isinstance(x, str) for x in r), r
        assert r[2] in ("ok", "bug", "bounded"), r
        assert r[0].startswith(f"{seed}."), f"seed {seed}: row for another seed's scenario: {r[:2]}"
        assert len(r[3].split()) >= 5, f"seed {seed}: {r[:2]}: the kernel fact is missing or too short"
    table = {(r[0], r[1]): r[2] for r in rows}
    expect = expected_pairs(seed)
    assert table == expect, f"seed {seed}: verdicts_{seed}.py and expect= differ:\n" + diff(table, expect)


# -- provenance --------------------------------------------------------------------------------------
@pytest.mark.parametrize("seed", SEEDS)
def test_every_bundled_pair_says_where_it_was_read(seed: str) -> None:
    """A Source for every variant a scenario runs, and for the scenario's own harness."""
    missing = []
    for s in seed_scenarios(seed):
        if s.source is None:
            missing.append(f"  {s.name}: no source= (where its harness was read)")
        for v in s.variants:
            if s.source_of(v) is None:
                missing.append(f"  {s.name} [{v}]: no Source for the variant")
    assert missing == [], f"seed {seed}:\n" + "\n".join(missing)


def test_list_json_gives_provenance_and_source_for_every_bundled_row(
    capsys: pytest.CaptureFixture[str],
) -> None:
    """`kvmcheck list --json`: every bundled row names its source and provenance (counts printed)."""
    env = dict(
        os.environ,
        PYTHONPATH=os.pathsep.join([str(HERE.parents[1] / "src"), os.environ.get("PYTHONPATH", "")]),
    )
    out = subprocess.run(
        [sys.executable, "-m", "kvmcheck", "list", "--json"],
        capture_output=True,
        text=True,
        env=env,
        timeout=300,
    )
    assert out.returncode == 0, out.stderr
    rows = json.loads(out.stdout)
    pairs = {(s.name, v) for s in bundled() for v in s.variants}
    assert {(r["scenario"], r["variant"]) for r in rows} == pairs
    counts = collections.Counter(r["provenance"] for r in rows)
    by_seed: dict[str, collections.Counter[Any]] = collections.defaultdict(collections.Counter)
    for r in rows:
        by_seed[r["scenario"].split(".", 1)[0]][r["provenance"]] += 1
    with capsys.disabled():
        print("\nkvmcheck list --json: rows per provenance:", dict(sorted(counts.items(), key=str)))
        for seed, c in sorted(by_seed.items()):
            print(f"  {seed}: {dict(sorted(c.items(), key=str))}")
    bad = [
        (r["scenario"], r["variant"])
        for r in rows
        if r["provenance"] not in PROVENANCES or not r["source"] or not r["scenario_source"]
    ]
    assert bad == [], f"{len(bad)} bundled rows lack provenance, source or scenario_source: {bad[:10]}"


# -- a docstring's "<variant>: ok/bug" claims agree with expect= ------------------------------------
_CLAIM = re.compile(
    r"(?:^|(?<=\n)|(?<=\. )|(?<=\.  )|(?<=; ))\s*"
    r"(?P<head>[\w.\-]+(?:(?:,\s*|\s+\.\.\s+|\s+and\s+)[\w.\-]+)*)\s*:\s*(?P<verdict>ok|bug)\b"
)


def docstring_claims(s: Scenario) -> list[tuple[str, str]]:
    """(variant, "ok" | "bug") for every claim "<variant>[, <variant> ..]: ok|bug" the docstring makes.

    A claim starts a line or a sentence; a head that is not made of this scenario's variant
    names ("Paths: ...") is no claim.  ``a .. b`` names the variants from a to b in table order.
    """
    doc = re.sub(r"\n[ \t]+", "\n", s.fn.__doc__ or "")
    order = list(s.variants)
    out: list[tuple[str, str]] = []
    for m in _CLAIM.finditer(doc):
        names: list[str] = []
        ok = True
        for part in re.split(r",\s*|\s+and\s+", m.group("head")):
            if " .. " in part or ".." in part.split():
                a, _, b = (x.strip() for x in part.partition(".."))
                if a in order and b in order and order.index(a) <= order.index(b):
                    names.extend(order[order.index(a) : order.index(b) + 1])
                    continue
                ok = False
            elif part.strip() in order:
                names.append(part.strip())
            else:
                ok = False
        if ok and names:
            out.extend((n, m.group("verdict")) for n in names)
    return out


def test_claims_parser_reads_lists_and_ranges() -> None:
    """The parser itself: a list, a range, a sentence start, and prose that is no claim."""

    def body(variant: str) -> None:
        """Intro.

        a, b: ok.
        c .. e: bug -- why.  f: ok (g: bug is prose inside a parenthesis).
        Paths: ok.
        """

    s = Scenario(body, name="x.y", expect=dict.fromkeys("abcdefg", "ok"))
    assert docstring_claims(s) == [
        ("a", "ok"),
        ("b", "ok"),
        ("c", "bug"),
        ("d", "bug"),
        ("e", "bug"),
        ("f", "ok"),
    ]


@pytest.mark.parametrize("seed", SEEDS)
def test_docstring_claims_match_expect(seed: str) -> None:
    wrong = [
        f"  {s.name}: the docstring says {v}: {said}, expect= says {s.expect[v]}"
        for s in seed_scenarios(seed)
        for v, said in docstring_claims(s)
        if s.expect[v] != said
    ]
    assert wrong == [], f"seed {seed}:\n" + "\n".join(wrong)


# -- the verdicts themselves, by exhaustive search (the full tier) -----------------------------------
PAIRS = [(s, v) for s in bundled() for v in s.variants]


@pytest.mark.slow
@pytest.mark.parametrize(("scn", "variant"), PAIRS, ids=[f"{s.name}[{v}]" for s, v in PAIRS])
def test_verdict_matches_expectation(scn: Scenario, variant: str) -> None:
    r = check(scn, variant=variant)
    assert r.verdict == scn.expect[variant], r.finding and str(r.finding)
    if r.verdict == "ok":
        assert r.complete  # exhaustive: "ok, complete" is a promise


def test_readme_provenance_counts_are_the_bundled_ones() -> None:
    """docs/models/README.md's per-seed provenance counts (the rows it has) are what the Sources say."""
    readme = (HERE.parents[1] / "docs/models/README.md").read_text()
    rows = re.findall(
        r"^\| \d+ `(\w+)\.\*` \((\d+) pairs\) \| (\d+) \| (\d+) \| (\d+) \| (\d+) \|$", readme, re.M
    )
    assert rows, "docs/models/README.md has no provenance table"
    for seed, pairs, *counts in rows:
        have = collections.Counter(
            src.provenance
            for s in seed_scenarios(seed)
            for v in s.variants
            if (src := s.source_of(v)) is not None
        )
        n = sum(len(s.variants) for s in seed_scenarios(seed))
        assert (int(pairs), [int(c) for c in counts]) == (n, [have[p] for p in PROVENANCES]), seed
