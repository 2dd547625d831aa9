"""Transfer: the gateway to the French liaison system."""
from services.transfer.app import build
from shared.runtime import serve

serve(build)
