"""py-spy on a server under load: ``--profile`` records each hot path's first round (all
threads, idle included) as collapsed stacks, and summarizes where the samples went."""

from __future__ import annotations

import re
import shutil
import signal
import subprocess
from collections import Counter
from pathlib import Path
from types import TracebackType

#: Samples per second (py-spy's default is 100; more gives steadier percentages in 8 s).
RATE = 250
#: Frames shown in a summary.
TOP = 18
_FRAME = re.compile(r"^(?P<func>[^ ]+) \((?P<file>[^:)]+)(?::\d+)?\)$")


class Profiler:
    def __init__(self, pid: int, out_dir: Path, name: str, *, subprocesses: bool = False) -> None:
        self.pid = pid
        #: Also the process's children (``reflex run`` serves from a granian worker).
        self.subprocesses = subprocesses
        out_dir.mkdir(parents=True, exist_ok=True)
        self.raw = out_dir / f"{name}.folded"
        self.summary = out_dir / f"{name}.txt"
        self.process: subprocess.Popen[bytes] | None = None

    def __enter__(self) -> Profiler:
        py_spy = shutil.which("py-spy")
        if py_spy is None:
            raise SystemExit("py-spy not found: pip install -e .[bench]")
        self.process = subprocess.Popen(
            [
                py_spy,
                *("record", "--pid", str(self.pid), "--rate", str(RATE)),
                # --nonblocking: py-spy reads the process without pausing it (pausing it 250
                # times a second, with native frames, left the server at 0 requests/s)
                *("--threads", "--idle", "--nonblocking", "--format", "raw"),
                *(["--subprocesses"] if self.subprocesses else []),
                *("-o", str(self.raw)),
            ],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        assert self.process is not None
        self.process.send_signal(signal.SIGINT)  # py-spy writes its file on Ctrl-C
        self.process.wait(timeout=60)
        if self.raw.exists():
            self.summary.write_text(summarize(self.raw.read_text()))


def _label(frame: str) -> str:
    m = _FRAME.match(frame.strip())
    if m is None:
        return frame.strip()
    file = m.group("file")
    for marker in ("site-packages/", "lib/python3", "arcano_tools/"):
        if marker in file:
            file = file.split(marker, 1)[1]
            break
    return f"{m.group('func')} ({file})"


def _thread_name(frame: str) -> str:
    """``thread (0x7f…): Thread-3 (_connection_worker_thread)`` → ``_connection_worker_thread``."""
    name = frame.split(": ", 1)[-1]
    m = re.search(r"\(([^()]+)\)$", name)
    return m.group(1) if m else name


#: Leaf frames that mean "waiting", not working (epoll, a lock, a queue, a sleep).
_WAITING = ("select", "epoll_wait", "poll", "wait", "sem_", "futex", "acquire", "get ")


def summarize(folded: str) -> str:
    """Samples per thread kind (all threads sampled, idle included), and for the event loop
    (MainThread) and the SQLite connection threads: the share spent waiting, and the frames
    with the most samples below them (inclusive) and at the leaf (self), as % of that
    thread kind's samples."""
    kinds: Counter[str] = Counter()
    inclusive: dict[str, Counter[str]] = {}
    leaf: dict[str, Counter[str]] = {}
    waiting: Counter[str] = Counter()
    total = 0
    for line in folded.splitlines():
        stack, _, count = line.rpartition(" ")
        if not stack or not count.isdigit():
            continue
        n = int(count)
        frames = stack.split(";")
        kind = _thread_name(frames[0])
        total += n
        kinds[kind] += n
        labels = [_label(f) for f in frames[1:]]
        for label in set(labels):
            inclusive.setdefault(kind, Counter())[label] += n
        if labels:
            leaf.setdefault(kind, Counter())[labels[-1]] += n
            if any(w in labels[-1].split(" (")[0].lower() for w in _WAITING):
                waiting[kind] += n
    if total == 0:
        return "no samples\n"
    out = [f"{total} samples (all threads, idle included)", "", "thread kinds:"]
    out += [f"  {100 * n / total:5.1f} %  {k}" for k, n in kinds.most_common(8)]
    for kind, n in kinds.most_common(3):
        out += ["", f"== {kind}: {n} samples, waiting {100 * waiting[kind] / n:.1f} %"]
        out += ["inclusive:"] + [
            f"  {100 * c / n:5.1f} %  {f}" for f, c in inclusive[kind].most_common(TOP * 2)
        ]
        out += ["self:"] + [f"  {100 * c / n:5.1f} %  {f}" for f, c in leaf[kind].most_common(TOP)]
    return "\n".join(out) + "\n"
