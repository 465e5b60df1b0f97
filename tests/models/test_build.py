"""A kernel build: one implementation per subsystem; variants of different files compose."""

from __future__ import annotations

import pytest

from kvmcheck.models.build import Build, Subsystem
from kvmcheck.models.virt.kvm.kvm_main import KvmMain
from kvmcheck.models.virt.kvm.pfncache import Pfncache
from kvmcheck.models.virt.kvm.pfncache_variants import SeedV1


class KvmMainPatched(KvmMain):
    version = "test-patch"


def test_patched_replaces_one_subsystem_and_keeps_the_others() -> None:
    base = Build(KvmMain(), Pfncache())
    b = base.patched(SeedV1())
    assert b.versions == {"kvm_main": "v6.8", "pfncache": "seed-v1"}
    both = b.patched(KvmMainPatched())
    assert both.versions == {"kvm_main": "test-patch", "pfncache": "seed-v1"}
    assert base.versions == {"kvm_main": "v6.8", "pfncache": "v6.8"}  # the base is untouched


def test_a_missing_subsystem_says_what_the_build_has() -> None:
    with pytest.raises(AttributeError, match=r"no 'tdp_mmu' subsystem.*kvm_main, pfncache"):
        _ = Build(KvmMain(), Pfncache()).tdp_mmu


def test_two_implementations_of_one_subsystem_are_refused() -> None:
    with pytest.raises(TypeError, match="two implementations of pfncache"):
        Build(Pfncache(), SeedV1())


def test_a_part_must_name_its_subsystem() -> None:
    class Nameless(Subsystem):
        version = "x"

    with pytest.raises(TypeError, match="names no subsystem"):
        Build(Nameless())


def test_vfio_builds_patch_only_the_files_their_patches_touch() -> None:
    """c82e81ab2569 (v6.1) touches vfio_main.c (the group side lived there); kvm-vfio stays v6.0's
    .destroy; 9e0f4f2918c2 touches only virt/kvm/vfio.c."""
    from kvmcheck.models.drivers.vfio import variants as vv

    v60, v61 = vv.BUILDS["v6.0"].versions, vv.BUILDS["v6.1"].versions
    assert v60 == {"vfio_group": "v6.0", "vfio_main": "v6.0", "kvm_vfio": "v6.0", "vfio_ap": "v6.2"}
    assert v61 == {**v60, "vfio_group": "v6.1", "vfio_main": "v6.1"}
    fixed, fix_9e0f = vv.BUILDS["2b48f52f2bff"].versions, vv.BUILDS["9e0f4f2918c2"].versions
    assert {k for k in fixed if fixed[k] != fix_9e0f[k]} == {"kvm_vfio"}
    assert set(vv.SOURCES) == set(vv.VARIANTS)


def test_one_mmu_slot_the_page_track_and_pfnmap_builds_hold_the_same_mmu_c() -> None:
    """mmu.c is one subsystem (issue 24 item 4): seed 001's v6.1 mmu runs seed 004's stage-2 fault.

    The v5.11 label overrides nothing, so v5.12 with page tracking's v6.1 ``Mmu`` in the slot
    has v5.12's verdict and execution count.
    """
    from kvmcheck import check
    from kvmcheck.models.arch.x86.kvm.mmu.mmu import Mmu
    from kvmcheck.models.arch.x86.kvm.mmu.page_track_variants import BUILDS as PT
    from kvmcheck.models.build import Patched
    from kvmcheck.models.virt.kvm.pfnmap_variants import BUILDS as PFNMAP
    from kvmcheck.scenarios import pfnmap

    assert all(isinstance(b.mmu, Mmu) for b in [*PT.values(), *PFNMAP.values()])
    assert type(PT["v6.1"].mmu) is Mmu
    both = PFNMAP["v5.12"].patched(*(PT["v6.1"].part(s) for s in PT["v6.1"].versions if s != "mmu"))
    assert set(both.versions) == set(PT["v6.1"].versions) | set(PFNMAP["v5.12"].versions)
    bundled = check(pfnmap.ttm_fault, variant="v5.12")
    on_v61 = check(pfnmap.ttm_fault, variant=Patched("v5.12", Mmu))
    assert (
        (on_v61.verdict, on_v61.executions)
        == (bundled.verdict, bundled.executions)
        == ("bug", bundled.executions)
    )


def test_every_bundled_scenario_gets_its_build_from_its_seeds_builds() -> None:
    """One variant shape: each scenario module publishes BUILDS, a build for every variant it runs."""
    from kvmcheck._loader import bundled
    from kvmcheck.patching import builds_of

    for s in bundled():
        builds = builds_of(s)
        assert builds is not None, f"{s.name}: its module publishes no BUILDS"
        assert set(s.variants) <= set(builds), s.name
        assert all(isinstance(b, Build) for b in builds.values())
