"""Matching: the scheme's ledger of cases, seats, pairs and weeks."""
from services.matching.app import build
from shared.runtime import serve

serve(build)
