"""Derive each runtime's operator set from the installed runtime and store it as data (targets/ops/<runtime>.json).

    PYTHONPATH=. python tools/derive_ops.py            # rewrite targets/ops/tflm.json and targets/ops/litert.json
    PYTHONPATH=. python tools/derive_ops.py --check    # exit 1 when the stored data differs from the runtimes

See edgedistill/profile/opsets.py for how the sets are read from the runtimes. Re-run after upgrading
tflite-micro or ai-edge-litert; tests/profile/test_opsets.py fails until the data matches the installed runtimes.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from edgedistill.profile.opsets import derive_ops

RUNTIMES = ("tflm", "litert")
OUT = Path(__file__).resolve().parents[1] / "targets" / "ops"


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--check", action="store_true", help="compare instead of writing")
    args = ap.parse_args()
    OUT.mkdir(parents=True, exist_ok=True)
    stale = []
    for rt in RUNTIMES:
        doc = derive_ops(rt).to_dict()
        path = OUT / f"{rt}.json"
        if args.check:
            old = json.loads(path.read_text()) if path.is_file() else {}
            if old.get("ops") != doc["ops"]:
                stale.append(rt)
            continue
        path.write_text(json.dumps(doc, indent=1) + "\n")
        print(f"{path}: {len(doc['ops'])} operators from {doc['package']} {doc['package_version']}")
    if stale:
        print(f"stale: {', '.join(stale)} (run tools/derive_ops.py)", file=sys.stderr)
    return 1 if stale else 0


if __name__ == "__main__":
    sys.exit(main())
