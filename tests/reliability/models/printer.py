"""A model that prints: --json must stay valid JSON."""

from kvmcheck import join, scenario, spawn
from kvmcheck.kernel import Struct


class C(Struct):
    x: int = 0


print("model file imported")


@scenario(kcsan=False)
def printer() -> None:
    c = C()
    print("scenario body runs")

    def t() -> None:
        print("thread runs", c.x)
        c.x = c.x + 1

    join(spawn(t), spawn(t))
