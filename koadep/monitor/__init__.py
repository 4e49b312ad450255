"""The monitor: queue new raw files as they appear, and run workers within the machine's means.

* :mod:`koadep.monitor.daemon`: :class:`Monitor`, which notes files from events
  and scans, queues each once it is complete, and keeps workers running;
* :mod:`koadep.monitor.files`: whether a file is whole, its md5, how it is shown;
* :mod:`koadep.monitor.staging`: the copy of each file in the stage area;
* :mod:`koadep.monitor.workers`: how many workers the machine can take, and what
  each runs;
* :mod:`koadep.monitor.logs`: the log lines on standard error.

Examples
--------
>>> worker_capacity(cpus=8, load=2.5, ceiling=4)
4
"""

from koadep.monitor.daemon import PATTERNS, REJECT, Monitor
from koadep.monitor.files import shown
from koadep.monitor.logs import log_to_stderr
from koadep.monitor.workers import worker_capacity

__all__ = ["PATTERNS", "REJECT", "Monitor", "log_to_stderr", "shown", "worker_capacity"]
