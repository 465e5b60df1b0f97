"""drivers/gpu/drm."""
