"""Device runners behind one interface, chosen by URL:

    local[://?cores=0,1&python=/usr/bin/python3]          this machine, a separate process, optionally pinned
    ssh://user@host[:port][?key=PATH&python=python3&known_hosts=PATH]
                                                          copy model + inputs + bench.py to a temporary directory on
                                                          the board, run them with the board's Python, clean up
    adb://SERIAL?benchmark_model=PATH[&python=PATH]       Android: push the model and run TFLite's benchmark_model
                                                          (PATH on this machine is pushed; device:PATH is used in
                                                          place), or the Python benchmark where the device has Python

Every runner returns the device benchmark's JSON document (schema edgedistill.device-bench/1, see bench.py) with a
"runner" block added; every failure is a DeviceError naming the step that failed (connect, copy, run, parse).
"""

from __future__ import annotations

import json
import re
import shlex
import shutil
import subprocess
import sys
import tempfile
import time
from abc import ABC, abstractmethod
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import parse_qs, urlsplit

import numpy as np

from edgedistill.device.schema import validate_bench
from edgedistill.errors import DeviceError
from edgedistill.registry import Registry

BENCH = Path(__file__).with_name("bench.py")
SCHEMA = "edgedistill.device-bench/1"


@dataclass(frozen=True)
class DeviceRequest:
    """What to measure: a model file, float32 input samples, optionally the outputs it must reproduce."""

    model: Path
    inputs: np.ndarray
    reference: np.ndarray | None = None
    tolerance: float = 1e-4
    threads: int = 1
    warmup: int = 5
    runs: int = 50
    timeout_s: float = 300.0
    benchmark_flags: tuple[str, ...] = ()  # extra flags for TFLite's benchmark_model (adb), e.g. the input layers'
    #                                        value ranges of a KV-cache step (its token id and position)


class DeviceRunner(ABC):
    scheme = "?"

    def __init__(self, url: str):
        self.url = url
        norm = url if "://" in url else url.replace("?", "://?", 1) if "?" in url else url + "://"
        parts = urlsplit(norm)
        self.parts = parts
        self.params = {k: v[-1] for k, v in parse_qs(parts.query).items()}

    @abstractmethod
    def benchmark(self, req: DeviceRequest) -> dict: ...

    options: tuple[str, ...] = ()  # the query keys the runner reads

    def check(self) -> None:
        """Raise DeviceError where the URL is not one this runner can use: a query key it does not read (a typo
        would be ignored), a port outside 1 … 65535; runners add their own checks. Connects to nothing."""
        unknown = sorted(set(self.params) - set(self.options))
        if unknown:
            raise DeviceError(f"{self.url}: the {self.scheme} runner reads no option {', '.join(map(repr, unknown))} "
                              f"(it reads {', '.join(self.options) or 'none'}).")
        if self.parts.port == 0:
            raise DeviceError(f"{self.url}: port 0 is no port to connect to; give the device's port (1 … 65535).")

    # helpers shared by runners -------------------------------------------------------------------------------
    def _stage(self, req: DeviceRequest, tmp: Path) -> list[Path]:
        """Write what travels to the device into tmp: bench.py, the model, inputs.npy, reference.npy."""
        if not req.model.is_file():
            raise DeviceError(f"Model file {req.model} does not exist.")
        files = [tmp / "bench.py", tmp / req.model.name, tmp / "inputs.npy"]
        shutil.copyfile(BENCH, files[0])
        shutil.copyfile(req.model, files[1])
        np.save(files[2], np.ascontiguousarray(req.inputs, dtype=np.float32))
        if req.reference is not None:
            files.append(tmp / "reference.npy")
            np.save(files[3], np.ascontiguousarray(req.reference, dtype=np.float32))
        return files

    def _bench_args(self, req: DeviceRequest, model_name: str) -> list[str]:
        args = [model_name, "--inputs", "inputs.npy", "--threads", str(req.threads), "--warmup", str(req.warmup),
                "--runs", str(req.runs), "--tolerance", repr(req.tolerance)]
        return args + (["--reference", "reference.npy"] if req.reference is not None else [])

    def _run(self, cmd: list[str], step: str, timeout: float, cwd: Path | None = None) -> subprocess.CompletedProcess:
        try:
            return subprocess.run(cmd, capture_output=True, text=True, timeout=timeout, cwd=cwd)
        except FileNotFoundError:
            raise DeviceError(f"{self.url}: {step} failed: the program {cmd[0]!r} is not installed on this machine.") \
                from None
        except subprocess.TimeoutExpired:
            raise DeviceError(f"{self.url}: {step} timed out after {timeout:.0f} s.") from None

    def _parse(self, proc: subprocess.CompletedProcess, started: float) -> dict:
        doc = _last_json(proc.stdout)
        if doc is None or doc.get("schema") != SCHEMA:
            tail = (proc.stdout.strip() or proc.stderr.strip())[-300:]
            raise DeviceError(f"{self.url}: the device did not return the benchmark's JSON (exit status "
                              f"{proc.returncode}); it said: {tail!r}.")
        if not doc.get("ok"):
            raise DeviceError(f"{self.url}: the benchmark failed on the device at step {doc.get('step')!r}: "
                              f"{doc.get('error')}.")
        doc["runner"] = {"url": self.url, "kind": self.scheme, "seconds": time.perf_counter() - started}
        return validate_bench(doc, self.url)


def _last_json(text: str) -> dict | None:
    for line in reversed(text.strip().splitlines()):
        line = line.strip()
        if line.startswith("{"):
            try:
                return json.loads(line)
            except json.JSONDecodeError:
                return None
    return None


RUNNERS: Registry[type[DeviceRunner]] = Registry("device runner")


@RUNNERS.register("local", "this machine, the benchmark in a separate process (?cores=0,1 pins it with taskset)")
class LocalRunner(DeviceRunner):
    scheme = "local"
    options = ("cores", "python")

    def check(self) -> None:
        super().check()
        if "cores" in self.params:
            import os

            have = sorted(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else list(
                range(os.cpu_count() or 1))
            try:
                asked = [int(c) for part in self.params["cores"].split(",")
                         for c in ([part] if "-" not in part else
                                   range(int(part.split("-")[0]), int(part.split("-")[1]) + 1))]
            except ValueError:
                asked = None
            if not asked or any(c not in have for c in asked):
                raise DeviceError(f"{self.url}: cores={self.params['cores']} is not a list of this machine's cores "
                                  f"(e.g. cores=0 or cores=0,1; it has {', '.join(map(str, have))}).")

    def benchmark(self, req: DeviceRequest) -> dict:
        started = time.perf_counter()
        with tempfile.TemporaryDirectory(prefix="edgedistill-device-") as d:
            tmp = Path(d)
            self._stage(req, tmp)
            cmd = [self.params.get("python", sys.executable), "bench.py", *self._bench_args(req, req.model.name)]
            if "cores" in self.params:
                cmd = ["taskset", "-c", self.params["cores"], *cmd]
            proc = self._run(cmd, "running the benchmark", req.timeout_s, cwd=tmp)
            return self._parse(proc, started)


@RUNNERS.register("ssh", "a board over ssh: ssh://user@host[:port]?key=PATH&python=python3")
class SSHRunner(DeviceRunner):
    scheme = "ssh"
    options = ("key", "python", "known_hosts", "connect_timeout")

    def check(self) -> None:
        super().check()
        self._target()

    def _target(self) -> str:
        if not self.parts.hostname:
            raise DeviceError(f"{self.url}: no host in the URL; write ssh://user@host[:port].")
        return f"{self.parts.username}@{self.parts.hostname}" if self.parts.username else self.parts.hostname

    def _opts(self, port_flag: str) -> list[str]:
        opts = ["-o", "BatchMode=yes", "-o", f"ConnectTimeout={int(self.params.get('connect_timeout', 10))}",
                "-o", "StrictHostKeyChecking=accept-new"]
        if "known_hosts" in self.params:
            opts += ["-o", f"UserKnownHostsFile={self.params['known_hosts']}"]
        if "key" in self.params:
            opts += ["-i", self.params["key"], "-o", "IdentitiesOnly=yes"]
        if self.parts.port:
            opts += [port_flag, str(self.parts.port)]
        return opts

    def _ssh(self, remote_cmd: str, step: str, timeout: float) -> subprocess.CompletedProcess:
        proc = self._run(["ssh", *self._opts("-p"), self._target(), remote_cmd], step, timeout)
        if proc.returncode == 255:  # ssh's own failure (connection, authentication), not the remote command's
            raise DeviceError(f"{self.url}: {step} failed: cannot reach the device over ssh: "
                              f"{proc.stderr.strip().splitlines()[-1] if proc.stderr.strip() else 'no answer'}.")
        return proc

    def benchmark(self, req: DeviceRequest) -> dict:
        started = time.perf_counter()
        python = self.params.get("python", "python3")
        made = self._ssh("mktemp -d /tmp/edgedistill.XXXXXX", "connecting (creating a working directory)", 60)
        remote = made.stdout.strip().splitlines()[-1] if made.returncode == 0 and made.stdout.strip() else ""
        if not remote.startswith("/tmp/edgedistill."):
            raise DeviceError(f"{self.url}: could not create a working directory on the device: "
                              f"{made.stderr.strip()[-200:] or made.stdout.strip()[-200:]!r}.")
        try:
            with tempfile.TemporaryDirectory(prefix="edgedistill-device-") as d:
                files = self._stage(req, Path(d))
                cp = self._run(["scp", "-q", *self._opts("-P"), *map(str, files), f"{self._target()}:{remote}/"],
                               "copying the model and the benchmark to the device", 120)
                if cp.returncode != 0:
                    raise DeviceError(f"{self.url}: copying files to the device failed: {cp.stderr.strip()[-200:]}.")
            args = " ".join(shlex.quote(a) for a in self._bench_args(req, req.model.name))
            proc = self._ssh(f"cd {shlex.quote(remote)} && {shlex.quote(python)} bench.py {args}",
                             "running the benchmark", req.timeout_s)
            if proc.returncode == 127:
                raise DeviceError(f"{self.url}: there is no {python!r} on the device (set ?python=/path/to/python).")
            return self._parse(proc, started)
        finally:
            try:
                self._ssh(f"rm -rf {shlex.quote(remote)}", "cleaning up", 30)
            except DeviceError:
                pass  # best effort: the measurement (or its error) matters more than the leftover directory


_ADB_DIR = "/data/local/tmp/edgedistill"
_NUM = r"([0-9.]+(?:e[+-]?[0-9]+)?)"


def parse_benchmark_model(text: str) -> dict:
    """Figures from TFLite's benchmark_model output (timings in µs, memory in MB)."""
    out: dict = {}
    m = re.search(rf"Inference timings in us: Init: {_NUM}, First inference: {_NUM}, Warmup \(avg\): {_NUM}, "
                  rf"Inference \(avg\): {_NUM}", text)
    if m:
        out.update(init_us=float(m[1]), first_us=float(m[2]), warmup_avg_us=float(m[3]), avg_us=float(m[4]))
    runs = re.findall(rf"count=(\d+) first={_NUM} curr={_NUM} min={_NUM} max={_NUM} avg={_NUM} std={_NUM}"
                      rf"(?: p5={_NUM} median={_NUM} p95={_NUM})?", text)
    if runs:
        last = runs[-1]  # the first line is the warm-up run, the last the measured runs
        out.update(count=int(last[0]), min_us=float(last[3]), max_us=float(last[4]), std_us=float(last[6]))
        if last[8]:
            out.update(median_us=float(last[8]), p95_us=float(last[9]))
    m = re.search(rf"Peak memory footprint \(MB\): init={_NUM} overall={_NUM}", text)
    if m:
        out["peak_memory_mb"] = float(m[2])
    m = re.search(rf"Overall peak memory footprint \(MB\) via periodic monitoring: {_NUM}", text)
    if m:
        out["peak_memory_mb"] = float(m[1])
    m = re.search(rf"Memory footprint delta from the start of the tool \(MB\): init={_NUM} overall={_NUM}", text)
    if m:
        out["memory_delta_mb"] = float(m[2])
    return out


@RUNNERS.register("adb", "an Android device over adb: adb://SERIAL?benchmark_model=PATH (or ?python=PATH)")
class ADBRunner(DeviceRunner):
    scheme = "adb"
    options = ("benchmark_model", "python")

    def _adb(self, args: list[str], step: str, timeout: float = 60) -> subprocess.CompletedProcess:
        serial = self.parts.netloc
        proc = self._run(["adb", *(["-s", serial] if serial else []), *args], step, timeout)
        if proc.returncode != 0:
            said = (proc.stderr.strip() or proc.stdout.strip()).splitlines()
            raise DeviceError(f"{self.url}: {step} failed: {said[-1] if said else f'adb exit {proc.returncode}'}.")
        return proc

    def _describe(self) -> dict:
        props = {}
        for key, prop in (("model", "ro.product.model"), ("manufacturer", "ro.product.manufacturer"),
                          ("android", "ro.build.version.release"), ("abi", "ro.product.cpu.abi"),
                          ("soc", "ro.soc.model")):
            props[key] = self._adb(["shell", "getprop", prop], "reading the device description").stdout.strip()
        return {"system": "Android", **{k: v for k, v in props.items() if v}}

    def benchmark(self, req: DeviceRequest) -> dict:
        started = time.perf_counter()
        state = self._adb(["get-state"], "connecting").stdout.strip()
        if state != "device":
            raise DeviceError(f"{self.url}: the device is {state!r}, not ready ('device').")
        device = self._describe()
        self._adb(["shell", "mkdir", "-p", _ADB_DIR], "creating a working directory")
        try:
            if "python" in self.params:
                return self._python_bench(req, device, started)
            return self._benchmark_model(req, device, started)
        finally:
            try:
                self._adb(["shell", "rm", "-rf", _ADB_DIR], "cleaning up")
            except DeviceError:
                pass

    def _benchmark_model(self, req: DeviceRequest, device: dict, started: float) -> dict:
        tool = self.params.get("benchmark_model")
        if not tool:
            raise DeviceError(f"{self.url}: say which benchmark_model binary to use: ?benchmark_model=PATH (a file on "
                              "this machine, pushed) or ?benchmark_model=device:/data/local/tmp/benchmark_model.")
        if tool.startswith("device:"):
            remote_tool = tool.removeprefix("device:")
        else:
            if not Path(tool).is_file():
                raise DeviceError(f"{self.url}: benchmark_model binary {tool} does not exist on this machine.")
            remote_tool = f"{_ADB_DIR}/benchmark_model"
            self._adb(["push", tool, remote_tool], "pushing benchmark_model")
            self._adb(["shell", "chmod", "755", remote_tool], "making benchmark_model executable")
        remote_model = f"{_ADB_DIR}/{req.model.name}"
        self._adb(["push", str(req.model), remote_model], "pushing the model")
        proc = self._adb(["shell", remote_tool, f"--graph={remote_model}", f"--num_threads={req.threads}",
                          f"--warmup_runs={req.warmup}", f"--num_runs={req.runs}", *req.benchmark_flags],
                         "running benchmark_model", req.timeout_s)
        figures = parse_benchmark_model(proc.stdout + proc.stderr)
        if "avg_us" not in figures:
            tail = (proc.stdout + proc.stderr).strip()[-300:]
            raise DeviceError(f"{self.url}: benchmark_model's output has no inference timings; it said: {tail!r}.")
        us = 1e-3
        peak = figures.get("peak_memory_mb")
        doc = {
            "schema": SCHEMA, "ok": True, "device": device,
            "runtime": {"name": "benchmark_model", "version": None, "threads": req.threads},
            "model": {"path": req.model.name, "bytes": req.model.stat().st_size},
            "load_ms": figures["init_us"] * us,
            "latency_ms": {"runs": figures.get("count"), "warmup": req.warmup, "mean": figures["avg_us"] * us,
                           "p50": figures["median_us"] * us if "median_us" in figures else None, "p90": None,
                           "p99": None, "p95": figures["p95_us"] * us if "p95_us" in figures else None,
                           "min": figures["min_us"] * us if "min_us" in figures else None,
                           "max": figures["max_us"] * us if "max_us" in figures else None},
            "peak_rss_bytes": int(peak * 2**20) if peak is not None else None,
            "parity": {"checked": False, "reason": "benchmark_model feeds random inputs and returns no outputs"},
            "runner": {"url": self.url, "kind": self.scheme, "seconds": time.perf_counter() - started},
        }
        return validate_bench(doc, self.url)

    def _python_bench(self, req: DeviceRequest, device: dict, started: float) -> dict:
        with tempfile.TemporaryDirectory(prefix="edgedistill-device-") as d:
            for f in self._stage(req, Path(d)):
                self._adb(["push", str(f), f"{_ADB_DIR}/{f.name}"], f"pushing {f.name}")
        args = " ".join(shlex.quote(a) for a in self._bench_args(req, req.model.name))
        proc = self._run(["adb", *(["-s", self.parts.netloc] if self.parts.netloc else []), "shell",
                          f"cd {_ADB_DIR} && {shlex.quote(self.params['python'])} bench.py {args}"],
                         "running the benchmark", req.timeout_s)
        doc = self._parse(proc, started)
        doc["device"] = {**doc.get("device", {}), **device}
        return doc


def runner_scheme(url: str) -> str:
    """The runner a device URL names (local, ssh, adb). Raises DeviceError for an empty URL or an unknown runner."""
    scheme = url.split("://", 1)[0] if "://" in url else url.split("?", 1)[0]
    if scheme not in RUNNERS:
        raise DeviceError(f"Unknown device {url!r}: use local, ssh://user@host[:port] or adb://SERIAL "
                          f"(known runners: {', '.join(RUNNERS.names())}).")
    return scheme


def check_url(url: str) -> str:
    """The runner a device URL names, once its form is one that runner reads (a known runner, a port that is a number
    from 0 to 65535, an ssh host): for refusing a bad URL before a build trains. Connects to nothing. Raises
    DeviceError in one sentence."""
    scheme = runner_scheme(url)
    try:
        runner = RUNNERS.get(scheme)(url)
        _ = runner.parts.port  # urlsplit checks the port only when asked
    except ValueError as exc:
        raise DeviceError(f"{url!r} is not a device URL the {scheme} runner can read ({exc}); write e.g. "
                          "ssh://user@host:22, adb://SERIAL or local.") from None
    runner.check()
    return scheme


def open_runner(url: str) -> DeviceRunner:
    return RUNNERS.get(runner_scheme(url))(url)
