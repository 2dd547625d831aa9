"""Deployment helpers: the embedded dev stack (stack), production topic creation, demo, bench."""
