"""`edgedistill` as torchrun's entry script for the two-node tests, with one failure injected: when
EDGEDISTILL_TEST_EXIT_AT_STEP=K is set, the process of global rank 1 exits (status 3, no cleanup, as a crashed or
preempted machine would) just before its K-th optimizer step of the first training run, on torchrun's first attempt
only (TORCHELASTIC_RESTART_COUNT 0); a restarted attempt runs normally. Nothing in the package knows of this."""

import os
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))  # this checkout's package, as `-m edgedistill` gets

from edgedistill.distill import trainer  # noqa: E402

EXIT_AT = int(os.environ.get("EDGEDISTILL_TEST_EXIT_AT_STEP", "0"))

if EXIT_AT and os.environ.get("RANK") == "1" and os.environ.get("TORCHELASTIC_RESTART_COUNT") == "0":
    step_once = trainer._Stepper.__call__

    def failing_step(self, batch, sched):
        if batch.epoch * self.per_epoch + batch.step + 1 == EXIT_AT:
            os._exit(3)
        return step_once(self, batch, sched)

    trainer._Stepper.__call__ = failing_step

from edgedistill.cli import main  # noqa: E402

main()
