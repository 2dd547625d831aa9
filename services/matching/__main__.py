import asyncio
import logging

from services.matching.app import build

logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s %(message)s")
asyncio.run(build().app.run())
