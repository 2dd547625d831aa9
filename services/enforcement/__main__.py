"""Enforcement: screens accepted events against the biometric index and records asylum bans."""
import asyncio
import logging

from services.enforcement.app import build

logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s %(message)s")
asyncio.run(build().app.run())
