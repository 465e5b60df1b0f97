"""drivers/gpu/drm/i915."""
