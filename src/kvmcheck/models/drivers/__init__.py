"""drivers: the device drivers whose memory KVM maps."""
