"""`make chaos` (`python -m deploy.chaos [--seed N] [--days N] [--short] [--keep-logs]`).

The demo's simulated weeks (deploy.demo, deploy.sim) driven through the real services on the
embedded broker and Redis while they are being broken, then everything published checked.

1. The house (house.py): the embedded broker and Redis, two instances of every service (the
   second a hot standby; LEASE_TTL_MS=2000 so takeovers are quick), and a supervisor that
   restarts any instance that exits 1-2 s later, as a restart policy would.
2. The faults (faults.py), planned from the seed and injected at random moments while the
   world runs: kill -9 of service instances (mostly the active one, so the standby takes
   over), some restarted with fault points armed (OIOO_FAULTS) so crashes also land between
   the Redis commit and the publish and between the publish and the offset commit, the broker
   stopped (SIGSTOP) for 20-60 s twice, Redis killed and restarted empty on the same port,
   Redis flushed, and Redis restored from a snapshot taken earlier in the run.
3. The verdict (verify.py), after the world has finished and everything has settled: every
   topic read from the beginning; duplicate deliveries counted (allowed); no event id with two
   contents; nothing lost (every valid inbound event accepted, every bad one dead-lettered,
   every accepted one screened, and everything a fault-free run would publish published, with
   the same id and content, and nothing more); the contract's invariants (deploy.sim.checks).

Why the reference is a fault-free RE-RUN over the recorded logs, not a second live run:
matching's outputs can legitimately differ between two live runs of the same seed, because
intake interleaves the inbound topics' 28 partitions differently each time and so writes the
screened log in a different order (and the world's reactions follow the answers). What must
hold is that the faults changed nothing: so a fresh in-process Matching is fed the screened
log the live run wrote, in log order, and a fresh Transfer the instruction log, each record
once (duplicate event ids dropped as the runtime's BatchContext does), with the settings the
stack used; every event they publish must have been published by the live run with the same
id and the same content. Intake and enforcement are checked on the way: every event in, out.

Exits 0 only when nothing was lost, nothing changed, nothing extra appeared and every
invariant held. The numbers are also written to .run/chaos.json. --short (CI) runs 3 days
with about five kills (one restart armed), one 5 s broker pause, one flush, one Redis restart
and one restore.
"""
