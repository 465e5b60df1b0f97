"""Models mirroring the kernel tree."""
