"""`make bench` (`python -m deploy.bench`): what the house handles on the embedded stack, in one
run. See `__main__` for the phases, `workload` for the traffic, `measure` for the instruments."""
