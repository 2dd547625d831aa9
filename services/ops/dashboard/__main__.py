"""`python -m services.ops.dashboard`: serve the live dashboard until stopped."""
from __future__ import annotations

import logging
import os

import uvicorn

from services.ops.dashboard.app import build


def main() -> None:
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s %(message)s")
    logging.getLogger("aiokafka").setLevel(logging.WARNING)  # it logs every (re)assignment of the probes
    host = os.environ.get("DASHBOARD_HOST", "127.0.0.1")
    port = int(os.environ.get("DASHBOARD_PORT", "8090"))
    logging.getLogger("oioo.dashboard").info("dashboard on http://%s:%s/", host, port)
    uvicorn.run(build(dict(os.environ)), host=host, port=port, log_level="warning")


if __name__ == "__main__":
    main()
