"""drivers/gpu/drm/i915/gvt: Intel GVT-g, KVMGT (its KVM page-track user)."""
