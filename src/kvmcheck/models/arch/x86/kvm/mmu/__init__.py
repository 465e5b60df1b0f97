"""arch/x86/kvm/mmu/: the x86 MMU (TDP MMU roots, page tracking, faults)."""
