"""Reusable fault-injection harnesses for the reliability suite and any source's own tests:
a fault-injecting HTTP proxy, a SIGKILL crash-and-resume runner, and store snapshots."""
