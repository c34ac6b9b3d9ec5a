"""Train the built-in teachers committed in edgedistill/zoo/ (reproducible: fixed seeds, log written beside them).

    python tools/train_teachers.py fashion --epochs 15      # ~25 min on 2 cores
    python tools/train_teachers.py digits --epochs 60       # ~30 s
    # a warm restart of a trained teacher (cosine from a lower rate): how the committed 94.04% teacher was made
    python tools/train_teachers.py fashion --init edgedistill/zoo/fashion_cnn.safetensors --epochs 6 --lr 1e-3 \
        --schedule cosine

The teacher sees the whole training split (never the test split); its test accuracy goes into the JSON log.
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from safetensors.torch import save_file

from edgedistill.data import read_dataset
from edgedistill.data.augment import random_hflip, random_shift
from edgedistill.students.layers import count_params
from edgedistill.zoo import models

ZOO = Path(__file__).resolve().parents[1] / "edgedistill" / "zoo"
RECIPES = {
    # name: (dataset, factory, shift pad, horizontal flip, batch, lr)
    "fashion": ("builtin:fashion-mnist", models.fashion_cnn, 2, True, 128, 3e-3),
    "digits": ("builtin:digits", models.digits_cnn, 1, False, 64, 3e-3),
}


def evaluate(model: torch.nn.Module, x: np.ndarray, y: np.ndarray) -> float:
    model.eval()
    correct = 0
    with torch.no_grad():
        for i in range(0, len(x), 1000):
            correct += int((model(torch.from_numpy(x[i : i + 1000])).argmax(1).numpy() == y[i : i + 1000]).sum())
    return 100.0 * correct / len(x)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("recipe", choices=sorted(RECIPES))
    ap.add_argument("--epochs", type=int, default=15)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--width", type=int, default=32)
    ap.add_argument("--name", default=None, help="output stem (default: <recipe>_cnn)")
    ap.add_argument("--init", default=None, help="start from these weights (safetensors; its JSON log is kept)")
    ap.add_argument("--lr", type=float, default=None, help="peak learning rate (default: the recipe's)")
    ap.add_argument("--schedule", choices=["onecycle", "cosine"], default="onecycle")
    ap.add_argument("--threads", type=int, default=2)
    args = ap.parse_args()
    source, factory, pad, flip, batch, lr = RECIPES[args.recipe]
    torch.manual_seed(args.seed)
    torch.set_num_threads(args.threads)
    lr = args.lr or lr
    raw = read_dataset(source)
    if raw.test is not None:
        train, test = raw.train, raw.test
    else:  # digits has no test split: hold out the same 20% that edgedistill's default split holds out (seed 0)
        perm = np.random.default_rng(0).permutation(len(raw.train))
        n_test = int(round(len(perm) * 0.2))
        test, train = raw.train.take(perm[:n_test]), raw.train.take(perm[n_test:])
    x, y = torch.from_numpy(train.x), torch.from_numpy(train.y)
    model = factory(args.width)
    init = None
    if args.init:
        from safetensors.torch import load_file

        from edgedistill.teachers.base import file_digest

        model.load_state_dict(load_file(args.init))
        log_path = Path(args.init).with_suffix(".json")
        init = {"path": args.init, "sha256": file_digest(Path(args.init)),
                "log": json.loads(log_path.read_text()) if log_path.is_file() else None,
                "test_acc": evaluate(model, test.x, test.y)}
        print(f"initialised from {args.init}: test accuracy {init['test_acc']:.2f}%", flush=True)
    opt = torch.optim.AdamW(model.parameters(), lr=lr, weight_decay=5e-4)
    steps = args.epochs * ((len(x) + batch - 1) // batch)
    if args.schedule == "onecycle":
        sched = torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=lr, total_steps=steps)
    else:
        sched = torch.optim.lr_scheduler.CosineAnnealingLR(opt, T_max=steps)
    gen = torch.Generator().manual_seed(args.seed)
    log, t0 = [], time.time()
    for epoch in range(args.epochs):
        model.train()
        perm = torch.randperm(len(x), generator=gen)
        total = 0.0
        for i in range(0, len(x), batch):
            idx = perm[i : i + batch]
            xb = random_shift(x[idx], pad, gen)
            xb = random_hflip(xb, gen) if flip else xb
            loss = F.cross_entropy(model(xb), y[idx], label_smoothing=0.05)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            sched.step()
            total += float(loss) * len(idx)
        acc = evaluate(model, test.x, test.y)
        log.append({"epoch": epoch + 1, "loss": total / len(x), "test_acc": acc, "elapsed_s": time.time() - t0})
        print(json.dumps(log[-1]), flush=True)
    stem = args.name or f"{args.recipe}_cnn"
    save_file({k: v.contiguous() for k, v in model.state_dict().items()}, str(ZOO / f"{stem}.safetensors"))
    meta = {
        "recipe": args.recipe, "factory": factory.__name__, "width": args.width, "seed": args.seed,
        "epochs": args.epochs, "params": count_params(model), "test_acc": log[-1]["test_acc"],
        "train_seconds": round(time.time() - t0, 1), "torch": torch.__version__, "history": log, "init": init,
        "lr": lr, "schedule": args.schedule,
        "command": f"python tools/train_teachers.py {args.recipe} --epochs {args.epochs} --seed {args.seed} "
        f"--width {args.width} --lr {lr} --schedule {args.schedule}" + (f" --name {args.name}" if args.name else "")
        + (f" --init {args.init}" if args.init else ""),
    }
    (ZOO / f"{stem}.json").write_text(json.dumps(meta, indent=2) + "\n")
    print(f"saved {stem}: test accuracy {meta['test_acc']:.2f}% in {meta['train_seconds']} s")


if __name__ == "__main__":
    main()
