"""Enforcement: the biometric index. The only service that keeps biometric ids."""
