"""A process that takes the maintenance lease, says so, and waits to be killed (SIGKILL)."""

from __future__ import annotations

import asyncio
import sys

from gasworks.db.engine import Database
from gasworks.db.leader import Leadership


async def main(url: str, ttl: float) -> None:
    db = Database(url)
    leadership = Leadership(db, ttl=ttl, holder="doomed")
    await leadership.lease.hold()
    leadership.task.start()
    while not leadership.lease.held:
        await asyncio.sleep(0.02)
    sys.stdout.write("leader\n")
    sys.stdout.flush()
    await asyncio.Event().wait()  # killed here


if __name__ == "__main__":
    asyncio.run(main(sys.argv[1], float(sys.argv[2])))
