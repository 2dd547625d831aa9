"""The project's own library: contracts, topics, signing, time, ids and runtime helpers."""
