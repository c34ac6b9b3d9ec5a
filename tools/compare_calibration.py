"""PTQ accuracy of one float student under each calibration method and size, side by side.

    python tools/compare_calibration.py --data builtin:fashion-mnist --epochs 5

Trains one float student (hard labels, fixed seed), then quantizes it post-training with every registered range
method and a few calibration-set sizes, and prints test accuracy. The recipes in calibration/ cite this script.
"""

from __future__ import annotations

import argparse

import torch

from edgedistill.data import make_splits, read_dataset
from edgedistill.distill.trainer import Objective, TrainSet, TrainSettings, accuracy, fit, predict_logits
from edgedistill.quantize import RANGE_METHODS, calibration_indices, post_training_quantize
from edgedistill.students import StudentArch, build_student


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--data", default="builtin:digits")
    ap.add_argument("--epochs", type=int, default=10)
    ap.add_argument("--student", default="cnn")
    ap.add_argument("--width", type=int, default=16)
    ap.add_argument("--sizes", default="100,1000,5000")
    args = ap.parse_args()
    torch.set_num_threads(2)
    s = make_splits(read_dataset(args.data))
    torch.manual_seed(0)
    model = build_student(StudentArch(args.student, args.width, 3), s.input_shape, s.num_classes, s.normalizer)
    data = TrainSet(torch.from_numpy(s.train.x), torch.from_numpy(s.train.y), None)
    res = fit(model, data, torch.from_numpy(s.val.x), torch.from_numpy(s.val.y), Objective(teacher=False),
              TrainSettings(epochs=args.epochs, batch_size=128))
    model.load_state_dict(res.best_state)
    model.eval()
    x, y = torch.from_numpy(s.test.x), torch.from_numpy(s.test.y)
    print(f"{args.data}: {args.student} width {args.width}, float test accuracy {accuracy(predict_logits(model, x), y):.2f}%")
    print(f"{'method':<12}" + "".join(f"{'n=' + n:>10}" for n in args.sizes.split(",")))
    for method in RANGE_METHODS.names():
        cells = []
        for n in (int(v) for v in args.sizes.split(",")):
            idx = torch.from_numpy(calibration_indices(len(data), n, 0))
            q = post_training_quantize(model, data.x[idx], method)
            cells.append(f"{accuracy(predict_logits(q, x), y):9.2f}%")
        print(f"{method:<12}" + "".join(cells))


if __name__ == "__main__":
    main()
