"""Transfer: sends return requests, withdrawals and admission offers to the French liaison system."""
import asyncio
import logging

from services.transfer.app import build

logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s %(message)s")
asyncio.run(build().app.run())
