"""drivers/gpu/drm/ttm: the Translation Table Manager (buffer objects, page pools)."""
