"""The HTML report, rendered by headless Chromium (Debian's ``chromium``): lanes, the failing step,
folding, filters and source snippets, checked in the DOM after the page's script ran.

``make test`` installs chromium when it runs as root and it is missing; elsewhere this test is
skipped with a message saying so.  A URL fragment ``#click:ID`` clicks elements once loaded.
"""

from __future__ import annotations

import shutil
import subprocess
from dataclasses import replace
from html.parser import HTMLParser
from pathlib import Path

import pytest

from kvmcheck import check
from kvmcheck._engine.confirm import confirm
from kvmcheck._engine.settings import Settings
from kvmcheck._engine.target import Target
from kvmcheck._loader import resolve
from kvmcheck.report.html import render_html
from kvmcheck.report.story import failing

KINDS = str(Path(__file__).parent / "kinds.py")
CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")


class Node:
    def __init__(self, tag: str, attrs: dict[str, str | None], parent: Node | None) -> None:
        self.tag, self.attrs, self.parent = tag, attrs, parent
        self.children: list[Node] = []
        self.text = ""

    @property
    def classes(self) -> set[str]:
        return set((self.attrs.get("class") or "").split())

    def all_text(self) -> str:
        return self.text + "".join(c.all_text() for c in self.children)

    def walk(self):
        yield self
        for c in self.children:
            yield from c.walk()


class Dom(HTMLParser):
    VOID = frozenset({"meta", "input", "br", "option"})

    def __init__(self, text: str) -> None:
        super().__init__()
        self.root = Node("#root", {}, None)
        self.cur = self.root
        self.feed(text)

    def handle_starttag(self, tag, attrs):
        n = Node(tag, dict(attrs), self.cur)
        self.cur.children.append(n)
        if tag not in self.VOID:
            self.cur = n

    def handle_endtag(self, tag):
        n = self.cur
        while n is not None and n.tag != tag:
            n = n.parent
        if n is not None and n.parent is not None:
            self.cur = n.parent

    def handle_data(self, data):
        self.cur.text += data

    def find(self, tag: str, cls: str | None = None, **attrs: str) -> list[Node]:
        out = []
        for n in self.root.walk():
            if n.tag != tag or (cls and cls not in n.classes):
                continue
            if all(n.attrs.get(k.replace("_", "-")) == v for k, v in attrs.items()):
                out.append(n)
        return out


@pytest.fixture(scope="module")
def page(tmp_path_factory):
    s = resolve("pfncache.seed_race")[0]
    r = check(s, variant="v6.8")
    cx = confirm(Target(s, "v6.8"), r, Settings())
    path = tmp_path_factory.mktemp("html") / "report.html"
    path.write_text(render_html([r], [cx]))
    return path, replace(r, finding=cx.finding)


def dump(path: Path, fragment: str = "") -> Dom:
    if CHROMIUM is None:
        pytest.skip(
            "chromium is not installed (Debian: apt-get install chromium; `make test` does it as root)"
        )
    out = subprocess.run(
        [CHROMIUM, "--headless", "--no-sandbox", "--disable-gpu", "--dump-dom", f"file://{path}{fragment}"],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert out.returncode == 0, out.stderr[-2000:]
    assert "<table" in out.stdout
    return Dom(out.stdout)


def test_lanes_failing_step_and_folds(page):
    path, r = page
    fail = failing(r.finding, r.finding.trace)
    assert fail is not None and fail.step is not None
    dom = dump(path)
    lanes = [th.all_text() for th in dom.find("th", "lane")]
    threads = {s.thread: s.thread_name for s in r.finding.trace if s.index <= fail.step.index}
    assert lanes == [f"T{t} {n}" for t, n in sorted(threads.items())]
    rows = dom.find("tr", "failing")
    assert len(rows) == 1 and "story" in rows[0].classes
    assert fail.step.op in rows[0].all_text()
    assert f">{fail.step.site.line:5d}" in rows[0].all_text()  # the source snippet, the line marked
    story = dom.find("tr", "story")
    assert 5 <= len(story) <= 25
    folded = [tr for tr in dom.find("tr", "step") if "data-fold" in tr.attrs]
    assert folded and all("hidden" in tr.attrs for tr in folded)
    assert dom.find("td", "held"), "no lock-held bar"


def test_a_click_expands_a_fold(page):
    path, _ = page
    folds = [tr.attrs["id"] for tr in dump(path).find("tr", "fold")]
    assert len(folds) >= 2
    one, other = folds[0], folds[1]

    def rows(dom: Dom, fold: str) -> list[Node]:
        return [tr for tr in dom.find("tr", "step") if tr.attrs.get("data-fold") == fold]

    dom = dump(path, f"#click:{one}")
    opened = dom.find("tr", "fold", id=one)
    assert opened and opened[0].attrs["data-open"] == "yes"
    assert rows(dom, one) and not any("hidden" in tr.attrs for tr in rows(dom, one))
    assert rows(dom, other) and all("hidden" in tr.attrs for tr in rows(dom, other))
    dom = dump(path, f"#click:{one},{one}")  # a second click folds it again
    assert all("hidden" in tr.attrs for tr in rows(dom, one))


def test_filter_by_thread_and_by_object(page):
    path, _ = page
    dom = dump(path, "#click:thread-toggle-2")
    assert all("hidden" in tr.attrs for tr in dom.find("tr", "step", data_thread="2"))
    assert all("hidden" in th.attrs for th in dom.find("th", "lane", data_thread="2"))
    dom = dump(path, "#object:gpc->lock")
    shown = [tr for tr in dom.find("tr", "step") if "hidden" not in tr.attrs]
    assert len(shown) > 5 and all("gpc->lock" in tr.attrs["data-objects"].split("|") for tr in shown)


def test_warnings_are_listed():
    s = resolve(f"{KINDS}::kinds.deadlock")[0]
    r = check(s, keep_going=True)  # the deadlock, and lockdep's warning seen on the way
    assert r.warnings
    text = render_html([r])
    assert "<ul class=warnings>" in text and "circular locking dependency" in text
