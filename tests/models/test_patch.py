"""A user's patch (issue 24 item 4): loaded from a file, put in its slot by build_for, run beside its base."""

from __future__ import annotations

import textwrap
from pathlib import Path

import pytest

from kvmcheck import check
from kvmcheck._engine.finding import UsageError
from kvmcheck.models.arch.x86.kvm.mmu.tdp_mmu_variants import BUILDS as TDP_BUILDS
from kvmcheck.models.arch.x86.kvm.mmu.tdp_mmu_variants import Fix_a889ea54b3da
from kvmcheck.models.build import Patched, apply_patch, build_for
from kvmcheck.models.virt.kvm.pfnmap_variants import BUILDS as PFNMAP_BUILDS
from kvmcheck.patching import load_patch, patched_pairs
from kvmcheck.scenarios import pfncache, pfnmap, tdp_mmu

# a889ea54b3da with ben-v1's order back: put (and maybe free) the root, then read its next entry
PUT_FIRST = """
from kvmcheck.kernel.list import list_next_entry
from kvmcheck.models.arch.x86.kvm.mmu.tdp_mmu_variants import Fix_a889ea54b3da

class PutFirst(Fix_a889ea54b3da):
    def tdp_mmu_next_root(self, kvm, root):
        self.tdp_mmu_put_root(kvm, root)
        return list_next_entry(root, "link")

not_a_class = 3

class Unrelated:
    pass

class OnTheAbstractBase(PutFirst):
    pass
"""

# 6addfcf27139 with v6.8's kvm_gpc_deactivate back: deactivate no longer takes refresh_lock
V68_DEACTIVATE = """
from kvmcheck.models.virt.kvm.pfncache import Pfncache
from kvmcheck.models.virt.kvm.pfncache_variants import Fix6addfcf27139

class MyFix(Fix6addfcf27139):
    def kvm_gpc_deactivate(self, gpc):
        Pfncache.kvm_gpc_deactivate(self, gpc)
"""


def write(tmp_path: Path, text: str, name: str = "mypatch.py") -> str:
    path = tmp_path / name
    path.write_text(textwrap.dedent(text))
    return str(path)


def test_a_patch_that_reintroduces_ben_v1s_order_is_a_bug_where_its_base_is_ok(tmp_path: Path) -> None:
    patch = load_patch(write(tmp_path, PUT_FIRST) + ":PutFirst")
    assert patch.base is Fix_a889ea54b3da and patch.slot == "tdp_mmu"
    (pair,) = patched_pairs(patch, [(tdp_mmu.next_root_freed, v) for v in tdp_mmu.ALL])
    assert (pair.variant, pair.patched_variant) == ("a889ea54b3da", "a889ea54b3da+PutFirst")
    base = check(pair.scenario, variant=pair.variant)
    mine = check(pair.patched, variant=pair.patched_variant)
    assert (base.verdict, mine.verdict) == ("ok", "bug")
    assert mine.finding is not None and mine.finding.kind == "use-after-free"


def test_the_v68_race_back_on_6addfcf27139_is_v68s_bug_where_the_base_is_ok(tmp_path: Path) -> None:
    """The README's workflow: a pfncache patch subclassing Fix6addfcf27139 runs on every variant
    that builds it (6addfcf27139, and v6.9 with 7a36d680658b's xen.c)."""
    patch = load_patch(write(tmp_path, V68_DEACTIVATE) + ":MyFix")
    pairs = patched_pairs(patch, [(pfncache.seed_race, v) for v in pfncache.seed_race.variants])
    assert [p.patched_variant for p in pairs] == ["6addfcf27139+MyFix", "v6.9+MyFix"]
    pair = pairs[0]
    base = check(pair.scenario, variant=pair.variant)
    mine = check(pair.patched, variant=pair.patched_variant)
    v68 = check(pfncache.seed_race, variant="v6.8")
    assert (base.verdict, mine.verdict, v68.verdict) == ("ok", "bug", "bug")
    assert mine.finding is not None and v68.finding is not None
    assert mine.finding.message == v68.finding.message == "kvm_gpc_activate: inactive cache is still valid"


def test_build_for_puts_the_patch_in_its_slot_only_for_a_patched_name(tmp_path: Path) -> None:
    patch = load_patch(write(tmp_path, PUT_FIRST) + ":PutFirst")
    name = Patched("a889ea54b3da", patch.cls)
    assert name == "a889ea54b3da" and hash(name) == hash("a889ea54b3da")  # the scenario sees the base
    assert type(build_for(TDP_BUILDS, name).tdp_mmu) is patch.cls
    assert type(build_for(TDP_BUILDS, "a889ea54b3da").tdp_mmu) is Fix_a889ea54b3da


def test_the_patch_starts_from_its_bases_state() -> None:
    """A module parameter the scenario set on the implementation is kept by the patch's instance."""

    class Mine(type(PFNMAP_BUILDS["v6.13"].kvm_main)):  # type: ignore[misc]
        pass

    unsafe = PFNMAP_BUILDS["v6.13"].configured("kvm_main", allow_unsafe_mappings=True)
    patched = apply_patch(unsafe, Mine)
    assert type(patched.kvm_main) is Mine and patched.kvm_main.allow_unsafe_mappings is True
    assert PFNMAP_BUILDS["v6.13"].kvm_main.allow_unsafe_mappings is False  # the bundled build is untouched


def test_a_patch_applies_to_every_variant_whose_build_holds_its_base(tmp_path: Path) -> None:
    """v5.11, v5.12 and f8be156be163 share the v5.11 x86 fault: a patch on it runs on all three."""
    mmu = type(PFNMAP_BUILDS["v5.11"].mmu)
    src = f"from {mmu.__module__} import {mmu.__name__}\nclass Mine({mmu.__name__}):\n    pass\n"
    patch = load_patch(write(tmp_path, src) + ":Mine")
    pairs = patched_pairs(patch, [(pfnmap.ttm_fault, v) for v in pfnmap.ALL])
    assert [p.patched_variant for p in pairs] == ["v5.11+Mine", "v5.12+Mine", "f8be156be163+Mine"]


@pytest.mark.parametrize(
    ("spec", "message"),
    [
        ("{d}/mypatch.py", "--patch takes FILE.py:Class"),
        ("{d}/missing.py:PutFirst", "--patch: no file"),
        ("{d}/mypatch.py:Nope", "defines no 'Nope'"),
        ("{d}/mypatch.py:not_a_class", "is not a kernel subsystem class"),
        ("{d}/mypatch.py:Unrelated", "is not a kernel subsystem class"),
        ("{d}/mypatch.py:OnTheAbstractBase", "base PutFirst is no bundled variant's implementation"),
    ],
)
def test_every_mistake_is_one_line(tmp_path: Path, spec: str, message: str) -> None:
    write(tmp_path, PUT_FIRST)
    with pytest.raises(UsageError, match=message) as e:
        load_patch(spec.format(d=tmp_path))
    assert "\n" not in str(e.value)


def test_a_target_with_no_variant_of_the_base_is_one_line(tmp_path: Path) -> None:
    patch = load_patch(write(tmp_path, PUT_FIRST) + ":PutFirst")
    with pytest.raises(UsageError, match=r"no build of tdp_mmu.next_root_freed \[v6.9\].*a889ea54b3da") as e:
        patched_pairs(patch, [(tdp_mmu.next_root_freed, "v6.9")])
    assert "\n" not in str(e.value)
