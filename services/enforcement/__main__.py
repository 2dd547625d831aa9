"""Enforcement: screens accepted events against the biometric index and records asylum bans."""
from services.enforcement.app import build
from shared.runtime import serve

serve(build)
