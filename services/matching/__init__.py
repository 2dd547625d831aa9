"""Matching: the scheme's ledger. Cases and their blockers, seats and their vetting, pairs
under the weekly cap, requests and their clocks, holds, offers and the weekly balance."""
