"""Helpers for `deploy.demo` and `deploy.bench`: the settle barrier, signed publishing, the
outbound collector (deploy.sim.kafka), the simulated outside world (deploy.sim.world) and the
contract's invariants checked on what was observed (deploy.sim.checks)."""
