"""Search strategies: each a small object with ``choose``, ``on_event`` and ``next_execution``."""
