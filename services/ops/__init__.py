"""The operators' tools: the `oioo` CLI, the Joint Committee report and the live dashboard.

They read the system only as its ops monitoring does — the `ops.*` topics from the beginning,
with no consumer group, and the services' consumer groups' committed offsets — and act on it
only as an authorised operator does: signed events on `ops.control.v1`.
"""
