"""An .npz converted once into a memory-mapped folder (`--npz mapped`; automatic past 1 GiB) trains exactly as the
same archive read into memory: the same samples in the same order, the same student weights. A second run reuses the
folder; metrics.json records the form."""

import json

import numpy as np
import torch
from click.testing import CliRunner
from safetensors.torch import save_file

from edgedistill.cli import main


def _distill(root, out, *extra):
    args = ["distill", "--data", str(root / "user" / "data.npz"), "--teacher", str(root / "teacher.safetensors"),
            "--teacher-factory", "tiny_models:tiny_cnn", "--steps", "15", "--alpha", "0.9", "-T", "4",
            "--augment", "none", "--no-baseline", "--threads", "1", "--student", "cnn:width=4,depth=1",
            "--cache-dir", str(root / "cache"), "--out", str(root / out), "-q", *extra]
    r = CliRunner().invoke(main, args, catch_exceptions=False)
    assert r.exit_code == 0, r.output
    return json.loads((root / out / "metrics.json").read_text())


def test_mapped_npz_trains_identically_to_the_in_memory_one_and_is_reused(tmp_path):
    from tiny_models import tiny_cnn

    teacher = tiny_cnn()
    rng = np.random.default_rng(0)
    x = rng.integers(0, 256, (700, 1, 8, 8), dtype=np.uint8)
    with torch.no_grad():
        y = teacher(torch.from_numpy(x).float()).argmax(1).numpy()
    y[:10] = np.arange(10)  # every class present
    x_test = rng.integers(0, 256, (150, 1, 8, 8), dtype=np.uint8)
    (tmp_path / "user").mkdir()
    np.savez_compressed(tmp_path / "user" / "data.npz", x=x, y=y, x_test=x_test, y_test=rng.integers(0, 10, 150))
    save_file(teacher.state_dict(), str(tmp_path / "teacher.safetensors"))

    memory = _distill(tmp_path, "memory", "--npz", "memory")
    mapped = _distill(tmp_path, "mapped", "--npz", "mapped")
    assert memory["data"]["form"] == {"samples": "in memory"}
    conv = mapped["data"]["form"]["npz_converted"]
    assert mapped["data"]["form"]["samples"] == "memory-mapped" and not conv["reused"]
    assert conv["folder"].startswith(str(tmp_path / "cache" / "npz-arrays"))
    assert sorted(p.name for p in (tmp_path / "user").iterdir()) == ["data.npz"]  # nothing beside the user's file
    assert mapped["data"]["source"] == memory["data"]["source"] == str(tmp_path / "user" / "data.npz")
    w_mem = (tmp_path / "memory" / "student.safetensors").read_bytes()
    assert (tmp_path / "mapped" / "student.safetensors").read_bytes() == w_mem  # same samples, order, arithmetic
    drop = lambda hist: [{k: v for k, v in h.items() if k != "seconds"} for h in hist]  # noqa: E731
    assert drop(mapped["student"]["history"]) == drop(memory["student"]["history"])
    assert mapped["student"]["test_acc"] == memory["student"]["test_acc"]

    from edgedistill.report.run_cost import run_cost, run_cost_lines

    line = "\n".join(run_cost_lines(run_cost(mapped)))
    assert ("- samples: memory-mapped; the .npz's 0.1 MiB of arrays as a .npy folder in the cache (converted "
            "once") in line
    assert "- samples: in memory" in "\n".join(run_cost_lines(run_cost(memory)))

    again = _distill(tmp_path, "again", "--npz", "mapped")
    assert again["data"]["form"]["npz_converted"]["reused"]
    assert again["data"]["form"]["npz_converted"]["folder"] == conv["folder"]
    assert (tmp_path / "again" / "student.safetensors").read_bytes() == w_mem
