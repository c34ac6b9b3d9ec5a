"""Test accuracy of the built-in Fashion-MNIST teachers and of their ensembles (arithmetic and geometric means of
probabilities at T = 1), side by side: does the ensemble beat its members (Hinton et al.'s cumbersome model)?

    python tools/eval_teachers.py --teacher builtin:fashion-mnist --teacher other.safetensors ...
"""

from __future__ import annotations

import argparse

import torch

from edgedistill.data import read_dataset
from edgedistill.distill.trainer import accuracy
from edgedistill.teachers import TeacherSpec, combine, load_teacher


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--teacher", action="append", default=None)
    args = ap.parse_args()
    names = args.teacher or ["builtin:fashion-mnist"]
    test = read_dataset("builtin:fashion-mnist").test
    y = torch.from_numpy(test.y)
    members = []
    for name in names:
        t = load_teacher(TeacherSpec(name))
        logits = torch.cat([t.logits(test.x[i : i + 1000]) for i in range(0, len(test.x), 1000)])
        members.append(logits)
        print(f"{name:<28} {t.num_params():>9,} params  {accuracy(logits, y):.2f}%")
    stacked = torch.stack(members)
    for method in ("arithmetic", "geometric"):
        print(f"{'ensemble (' + method + ')':<28} {'':>16}  {accuracy(combine(stacked, method, 1.0), y):.2f}%")


if __name__ == "__main__":
    main()
