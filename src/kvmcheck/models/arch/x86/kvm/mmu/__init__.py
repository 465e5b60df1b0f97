"""arch/x86/kvm/mmu: the KVM MMU."""
