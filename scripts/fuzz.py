"""`make fuzz`: the deep schemathesis profile against a real server, on both databases.

python scripts/fuzz.py [--profile quick|deep] [--db sqlite|postgres|both]
"""

from __future__ import annotations

import argparse
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from gasworks.testing.fuzz import PROFILES, run  # noqa: E402


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--profile", choices=sorted(PROFILES), default="deep")
    parser.add_argument("--db", choices=["sqlite", "postgres", "both"], default="both")
    args = parser.parse_args()
    failed = False
    for dialect in ("sqlite", "postgres") if args.db == "both" else (args.db,):
        with tempfile.TemporaryDirectory(prefix="gasworks-fuzz-") as tmp:
            home = Path(tmp)
            if dialect == "sqlite":
                result = run(f"sqlite+aiosqlite:///{home}/fuzz.db", home, PROFILES[args.profile])
            else:
                from tests.dbtemplates import PostgresTemplate

                tpl = PostgresTemplate()
                try:
                    url = tpl.new()
                    result = run(url, home, PROFILES[args.profile])
                    tpl.drop(url)
                finally:
                    tpl.close()
            print(f"===== {dialect} =====\n{result.stdout}{result.stderr}", flush=True)
            failed |= result.returncode != 0
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
