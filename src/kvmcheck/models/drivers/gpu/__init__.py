"""drivers/gpu."""
