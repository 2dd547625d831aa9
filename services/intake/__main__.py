"""Intake: the edge where every inbound contract topic is checked."""
from services.intake.app import build
from shared.runtime import serve

serve(build)
