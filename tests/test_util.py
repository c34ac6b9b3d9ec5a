"""write_json: atomic for regular files, and it never replaces a link or a special file with a file of its own."""

import json
import os

from edgedistill.util import write_json


def test_a_symlink_keeps_pointing_at_its_target_which_gets_the_json(tmp_path):
    real, link = tmp_path / "real.json", tmp_path / "link.json"
    real.write_text("{}")
    link.symlink_to(real)
    write_json(link, {"a": 1})
    assert link.is_symlink() and json.loads(real.read_text()) == {"a": 1}


def test_a_special_file_is_written_in_place_not_replaced(tmp_path):
    fifo = tmp_path / "pipe"
    os.mkfifo(fifo)
    r = os.open(fifo, os.O_RDONLY | os.O_NONBLOCK)  # a reader, so the writer's open does not block
    try:
        write_json(fifo, {"b": 2})
        assert json.loads(os.read(r, 4096)) == {"b": 2}
    finally:
        os.close(r)
    assert not fifo.is_file() and fifo.exists()  # still a FIFO
    write_json(tmp_path / "plain.json", [1])
    assert json.loads((tmp_path / "plain.json").read_text()) == [1] and len(list(tmp_path.iterdir())) == 2
