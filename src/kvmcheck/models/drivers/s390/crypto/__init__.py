"""Models of the kernel's drivers/ tree."""
