"""On-device measurement: a self-contained benchmark (bench.py, copied to the device) and runners that reach the
device by URL (local, ssh://, adb://)."""

from edgedistill.device.runners import RUNNERS, DeviceRequest, open_runner

__all__ = ["RUNNERS", "DeviceRequest", "open_runner"]
