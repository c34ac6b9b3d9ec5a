"""An image folder decoded once into a memory-mapped folder (`--data-form mapped`; automatic past 1 GiB of decoded
float32) trains exactly as the same folder read into memory: the same samples in the same order, the same label
map, the same student weights. A second run reuses the folder; a changed file makes a new one; a damaged image is
refused in one paragraph with nothing left in the cache or beside the user's images."""

import json
import os

import numpy as np
import torch
from click.testing import CliRunner
from PIL import Image
from safetensors.torch import save_file

from edgedistill.cli import main
from edgedistill.data.folder import read_image_folder
from edgedistill.data.npy_dir import read_npy_dir
from edgedistill.pipeline import data_form as data_form_module
from edgedistill.pipeline.data_form import arrays_source

CLASSES = tuple(f"class{c}" for c in range(10))  # tiny_cnn has 10 outputs


def _folder(root, per_class=21, unlabeled=20):
    """Grey 8×8 PNGs, each class brighter than the last; one image 10×9 (resized to 8×8 by the folder's rule)."""
    rng = np.random.default_rng(0)
    for c, name in enumerate([*CLASSES, "unlabeled"]):
        (root / name).mkdir(parents=True)
        for i in range(per_class if name != "unlabeled" else unlabeled):
            base = 13 * c + rng.integers(0, 120, (8, 8))
            Image.fromarray(base.astype(np.uint8), "L").save(root / name / f"{i:03d}.png")
    Image.fromarray(rng.integers(0, 255, (9, 10), dtype=np.uint8), "L").save(root / "class3" / "999.png")


def _setup(tmp_path):
    from tiny_models import tiny_cnn

    _folder(tmp_path / "user" / "images")
    save_file(tiny_cnn().state_dict(), str(tmp_path / "teacher.safetensors"))


def _distill(root, out, *extra):
    args = ["distill", "--data", str(root / "user" / "images"), "--teacher", str(root / "teacher.safetensors"),
            "--teacher-factory", "tiny_models:tiny_cnn", "--steps", "12", "--alpha", "0.9", "-T", "4",
            "--augment", "none", "--no-baseline", "--threads", "1", "--student", "cnn:width=4,depth=1",
            "--cache-dir", str(root / "cache"), "--out", str(root / out), "-q", *extra]
    return CliRunner().invoke(main, args, catch_exceptions=False)


def _metrics(root, out, *extra):
    r = _distill(root, out, *extra)
    assert r.exit_code == 0, r.output
    return json.loads((root / out / "metrics.json").read_text())


def test_mapped_folder_trains_identically_to_the_in_memory_read_and_is_reused(tmp_path, monkeypatch):
    monkeypatch.syspath_prepend(os.path.dirname(os.path.dirname(__file__)))
    _setup(tmp_path)
    images = tmp_path / "user" / "images"
    before = sorted(str(p.relative_to(images)) for p in images.rglob("*"))

    memory = _metrics(tmp_path, "memory", "--data-form", "memory")
    mapped = _metrics(tmp_path, "mapped", "--data-form", "mapped")
    assert memory["data"]["form"] == {"samples": "in memory"}
    conv = mapped["data"]["form"]["folder_converted"]
    assert mapped["data"]["form"]["samples"] == "memory-mapped" and not conv["reused"] and conv["images"] == 231
    assert conv["folder"].startswith(str(tmp_path / "cache" / "image-folders"))
    assert sorted(str(p.relative_to(images)) for p in images.rglob("*")) == before  # nothing beside the images
    assert mapped["data"]["source"] == memory["data"]["source"] == str(images)

    # the same samples, order and label map as the in-memory reader (an independent decode of the same files)
    ref = read_image_folder(images)
    conv_ds = read_npy_dir(tmp_path / "cache" / "image-folders" / os.path.basename(conv["folder"]))
    assert conv_ds.train.x.dtype == np.float32 and conv_ds.train.x.shape == (231, 1, 8, 8)
    assert np.array_equal(np.asarray(conv_ds.train.x), ref.train.x)
    assert np.array_equal(conv_ds.train.y, ref.train.y) and (ref.train.y == -1).sum() == 20
    assert conv_ds.class_names == ref.class_names == list(CLASSES)

    w_mem = (tmp_path / "memory" / "student.safetensors").read_bytes()
    assert (tmp_path / "mapped" / "student.safetensors").read_bytes() == w_mem
    drop = lambda hist: [{k: v for k, v in h.items() if k != "seconds"} for h in hist]  # noqa: E731
    assert drop(mapped["student"]["history"]) == drop(memory["student"]["history"])
    assert mapped["student"]["test_acc"] == memory["student"]["test_acc"]

    from edgedistill.report.run_cost import run_cost, run_cost_lines

    assert "the image folder's 231 images decoded to 0.1 MiB of float32 in a .npy folder in the cache (converted " \
           "once" in "\n".join(run_cost_lines(run_cost(mapped)))

    again = _metrics(tmp_path, "again", "--npz", "mapped")  # the former name of the option still works
    assert again["data"]["form"]["folder_converted"]["reused"]
    assert again["data"]["form"]["folder_converted"]["folder"] == conv["folder"]
    assert (tmp_path / "again" / "student.safetensors").read_bytes() == w_mem


def test_auto_converts_past_the_threshold_and_a_changed_file_makes_a_new_folder(tmp_path, monkeypatch):
    images = tmp_path / "images"
    _folder(images, per_class=4, unlabeled=0)
    cache = tmp_path / "cache"
    assert arrays_source(str(images), "auto", cache) == (str(images), None)  # 41 × 256 B: in memory
    monkeypatch.setattr(data_form_module, "FOLDER_MAP_BYTES", 41 * 64 * 4 - 1)  # one byte under the decoded size
    folder, conv = arrays_source(str(images), "auto", cache)
    assert conv is not None and not conv.reused and conv.array_bytes == 41 * 64 * 4 and folder == conv.folder
    assert arrays_source(str(images), "auto", cache)[1].reused
    first = images / "class0" / "000.png"
    Image.fromarray(np.full((8, 8), 7, np.uint8), "L").save(first)  # same size in bytes maybe, new mtime
    os.utime(first, ns=(first.stat().st_atime_ns, first.stat().st_mtime_ns + 1_000_000))
    _, conv2 = arrays_source(str(images), "auto", cache)
    assert not conv2.reused and conv2.folder != conv.folder
    assert np.all(np.asarray(read_npy_dir(type(images)(conv2.folder)).train.x[0]) == np.float32(7 / 255))
    assert sorted(p.name for p in (cache / "image-folders").iterdir()) == sorted(
        os.path.basename(c.folder) for c in (conv, conv2))  # no temporary folder left


def test_a_damaged_image_is_refused_and_leaves_nothing_behind(tmp_path, monkeypatch):
    monkeypatch.syspath_prepend(os.path.dirname(os.path.dirname(__file__)))
    _setup(tmp_path)
    bad = tmp_path / "user" / "images" / "class7" / "015.png"
    bad.write_bytes(bad.read_bytes()[:30])  # cut short: the header survives, the pixels do not
    r = _distill(tmp_path, "out", "--data-form", "mapped")
    assert r.exit_code == 2 and "Traceback" not in r.output, r.output
    assert f"Cannot read image {bad}" in r.output
    assert not (tmp_path / "out").exists()
    assert list((tmp_path / "cache" / "image-folders").iterdir()) == []
