import asyncio
import logging

from services.intake.app import build
from shared.security import check_production
from shared.settings import Settings

logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s %(message)s")
check_production(Settings.from_env())
asyncio.run(build().app.run())
