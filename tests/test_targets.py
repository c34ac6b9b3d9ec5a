"""Every committed target profile validates; bad profiles fail naming the field; unknown names list the known ones."""

import re
from pathlib import Path

import pytest
from click.testing import CliRunner

from edgedistill.cli import main
from edgedistill.errors import ConfigError
from edgedistill.targets import NUMERIC_FIELDS, load_profile_file, load_target, profile_files

FILES = sorted((Path(__file__).parents[1] / "targets").glob("*.toml"))


def test_required_targets_exist():
    assert {"cpu", "android", "rpi4", "cortex-m4", "cortex-m7"} <= set(profile_files())


@pytest.mark.parametrize("path", FILES, ids=lambda p: p.stem)
def test_profile_validates_and_cites_sources(path):
    p = load_profile_file(path)
    for f in NUMERIC_FIELDS:
        if getattr(p, f) is not None:
            assert len(p.sources[f]) > 10
    if p.kind == "mcu":
        assert p.precisions == ["int8"] and p.runtime == "tflm" and p.ram_bytes and p.flash_bytes
    root = Path(__file__).parents[1]
    for field, text in p.sources.items():
        for script in re.findall(r"tools/[\w./-]+\.py", text):  # a cited script must exist in the repository
            assert (root / script).is_file(), f"{path.name}: {field} cites {script}, which does not exist"
    if p.kind == "host":  # this machine's throughputs were measured here, by a script a reader can re-run
        for f in ("peak_int8_macs_per_s", "peak_fp32_macs_per_s", "memory_bandwidth_bytes_per_s"):
            assert "tools/" in p.sources[f], (f, p.sources[f])


def test_mcu_limits_match_the_issue():
    m4 = load_target("cortex-m4")
    assert m4.ram_bytes == 256 * 1024 and m4.flash_bytes == 1024 * 1024 and 80e6 <= m4.clock_hz <= 168e6


def _write(tmp_path, text):
    p = tmp_path / "bad.toml"
    p.write_text(text)
    return p


def test_schema_failure_names_the_field(tmp_path):
    good = FILES[0].read_text().replace(f'name = "{FILES[0].stem}"', 'name = "bad"')
    with pytest.raises(ConfigError, match="threads"):
        load_profile_file(_write(tmp_path, re.sub(r"^threads = (\d+)$", r"threads = -\1", good, flags=re.M)))
    lines = [line for line in good.splitlines() if not line.startswith("peak_int8_macs_per_s =")]
    with pytest.raises(ConfigError, match="peak_int8_macs_per_s"):
        load_profile_file(_write(tmp_path, "\n".join(lines)))
    with pytest.raises(ConfigError, match="schema_version"):
        load_profile_file(_write(tmp_path, good.replace("schema_version = 1", "schema_version = 99")))
    no_source = "\n".join(line for line in good.splitlines() if not line.startswith('clock_hz = "'))
    with pytest.raises(ConfigError, match="source"):
        load_profile_file(_write(tmp_path, no_source))


def test_user_targets_directory_is_searched_first(tmp_path, monkeypatch):
    """$EDGEDISTILL_TARGETS: a profile there shadows the built-in one of the same name, and a new name is listed."""
    builtin = (Path(__file__).parents[1] / "targets" / "cortex-m4.toml").read_text()
    mine = re.sub(r"^clock_hz = .*$", "clock_hz = 7.7e7", builtin, count=1, flags=re.M)
    mine = re.sub(r'^clock_hz = ".*"$', 'clock_hz = "our own board, overclocked down to 77 MHz"', mine, flags=re.M)
    assert "clock_hz = 7.7e7" in mine and "77 MHz" in mine
    (tmp_path / "cortex-m4.toml").write_text(mine)
    (tmp_path / "my-board.toml").write_text(mine.replace('name = "cortex-m4"', 'name = "my-board"'))
    monkeypatch.setenv("EDGEDISTILL_TARGETS", str(tmp_path))
    assert load_target("cortex-m4").clock_hz == 7.7e7 and load_target("my-board").clock_hz == 7.7e7
    r = CliRunner().invoke(main, ["targets", "show", "cortex-m4"])
    assert r.exit_code == 0 and "source: our own board, overclocked down to 77 MHz" in r.output
    r = CliRunner().invoke(main, ["targets", "list"])
    assert r.exit_code == 0 and "my-board" in r.output and "cortex-m7" in r.output  # built-ins still listed
    monkeypatch.delenv("EDGEDISTILL_TARGETS")
    assert load_target("cortex-m4").clock_hz == 1.2e8


def test_unknown_target_lists_known():
    with pytest.raises(ConfigError, match="cortex-m4"):
        load_target("esp32")


def test_cli_targets():
    r = CliRunner().invoke(main, ["targets", "list"])
    assert r.exit_code == 0 and "cortex-m7" in r.output
    r = CliRunner().invoke(main, ["targets", "show", "cortex-m4"])
    assert r.exit_code == 0 and "source: NXP K64" in r.output
    r = CliRunner().invoke(main, ["targets", "show", "nope"])
    assert r.exit_code == 2 and r.output.startswith("error: Unknown target 'nope'")


def test_a_wheel_carries_the_target_profiles_where_search_dirs_looks(tmp_path, monkeypatch):
    """Built from a clean copy of the source (no stale build/), the wheel installs targets/*.toml under
    <prefix>/share/edgedistill/targets, and search_dirs() looks there for an installed (non-source) edgedistill."""
    import shutil
    import subprocess
    import sys
    import zipfile

    from edgedistill import targets as targets_mod

    root = Path(__file__).resolve().parents[1]
    src = tmp_path / "src"
    src.mkdir()
    for name in ("pyproject.toml", "README.md", "targets", "edgedistill"):
        (shutil.copytree if (root / name).is_dir() else shutil.copy)(
            root / name, src / name, **({"ignore": shutil.ignore_patterns("__pycache__")} if (root / name).is_dir() else {}))
    subprocess.run([sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "-q", "-w",
                    str(tmp_path / "dist"), str(src)], check=True, capture_output=True)
    wheel = next((tmp_path / "dist").glob("edgedistill-*.whl"))
    prefix = tmp_path / "prefix"
    with zipfile.ZipFile(wheel) as zf:
        shipped = {Path(n).name for n in zf.namelist() if "/data/share/edgedistill/targets/" in n}
        for n in zf.namelist():
            if "/data/" in n and n.endswith(".toml"):
                dest = prefix / n.split("/data/", 1)[1]
                dest.parent.mkdir(parents=True, exist_ok=True)
                dest.write_bytes(zf.read(n))
    assert shipped == {p.name for p in (root / "targets").glob("*.toml")} | \
        {p.name for p in (root / "targets" / "ops").glob("*.json")}  # and the runtimes' derived operator sets
    monkeypatch.setattr(sys, "prefix", str(prefix))
    assert prefix / "share" / "edgedistill" / "targets" in targets_mod.search_dirs()


@pytest.mark.parametrize("name", ["android", "cortex-m4"])
def test_targets_show_prints_plain_values_not_python_reprs(name):
    r = CliRunner().invoke(main, ["targets", "show", name])
    assert r.exit_code == 0
    values = {line[:30].strip(): line[31:] for line in r.output.splitlines() if line[:30].strip()}
    p = load_target(name)
    assert not re.search(r"\[|\]|\{|\}|\bNone\b|'", "\n".join(values.values())), r.output
    assert values["formats"] == ", ".join(p.formats) and values["precisions"] == ", ".join(p.precisions)
    assert values["ram_bytes"] == f"{p.ram_bytes:,} B" and values["clock_hz"] == f"{int(p.clock_hz):,} Hz"
    assert values["efficiency"] == ", ".join(f"{k} {v:g}" for k, v in p.efficiency.items())
    assert values["ops"].startswith("not set: every operator the runtime registers")
    assert float(values["op_overhead_s"].removesuffix(" s")) == p.op_overhead_s
