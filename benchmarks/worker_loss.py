"""How long the surviving worker of a two-worker run takes to notice that the other one died or froze.

Two ``shadownet train`` processes under MultiWorkerMirroredStrategy on 127.0.0.1 (TF_CONFIG, CPU); after both
have trained a few steps, worker 1 gets SIGKILL (dead: its connections close) or SIGSTOP (frozen: its
connections stay open, it stops answering). Measured: the seconds from the signal to worker 0's exit, its
exit code and the last line of its error output, for ``worker_timeout_seconds`` 0 (the default: TensorFlow's
connection errors and coordination-service heartbeats) and, with ``--timeouts``, other values.

    python benchmarks/worker_loss.py [--trials 3] [--timeouts 0,7] [--work DIR]

Prints one JSON object. Takes a few minutes on 2 cores.
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import socket
import statistics
import subprocess
import sys
import time
from pathlib import Path

STEP_LINE = "step="


def shadownet(*args) -> None:
    subprocess.run([sys.executable, "-m", "shadownet", *map(str, args)], check=True, stdout=subprocess.DEVNULL)


def free_ports(n: int) -> list[int]:
    sockets = [socket.socket() for _ in range(n)]
    for s in sockets:
        s.bind(("127.0.0.1", 0))
    ports = [s.getsockname()[1] for s in sockets]
    for s in sockets:
        s.close()
    return ports


def start(folder: Path, index: int, addresses: list[str], records: Path, timeout: float) -> tuple:
    folder.mkdir(parents=True, exist_ok=True)
    env = dict(os.environ, CUDA_VISIBLE_DEVICES="", PYTHONUNBUFFERED="1", TMPDIR=str(folder),
               TF_CONFIG=json.dumps({"cluster": {"worker": addresses}, "task": {"type": "worker", "index": index}}))
    out, err = open(folder / "stdout", "w"), open(folder / "stderr", "w")
    process = subprocess.Popen(
        [sys.executable, "-m", "shadownet", "train", "--tfrecords-dir", records, "--model-dir", folder.parent / "run",
         "--model", "shadownet_small", "--batch-size", "4", "--train-steps", "100000", "--log-every", "1",
         "--eval-every", "100000", "--checkpoint-every", "100000", "--mixed-precision", "off", "--input-mode", "fixed",
         "--worker-timeout-seconds", str(timeout)], env=env, stdout=out, stderr=err)
    return process, folder, (out, err)


def steps(folder: Path) -> int:
    return sum(1 for line in (folder / "stdout").read_text().splitlines() if line.startswith(STEP_LINE))


def trial(work: Path, records: Path, action: str, timeout: float, limit: float = 300) -> dict:
    addresses = [f"127.0.0.1:{port}" for port in free_ports(2)]
    workers = [start(work / f"worker{i}", i, addresses, records, timeout) for i in range(2)]
    try:
        deadline = time.monotonic() + limit
        while min(steps(folder) for _, folder, _ in workers) < 5:
            if time.monotonic() > deadline or any(p.poll() is not None for p, _, _ in workers):
                return {"action": action, "error": "did not start training"}
            time.sleep(0.1)
        survivor, victim = workers[0][0], workers[1][0]
        began = time.monotonic()
        victim.send_signal(signal.SIGKILL if action == "kill" else signal.SIGSTOP)
        try:
            code = survivor.wait(limit)
            seconds = round(time.monotonic() - began, 1)
        except subprocess.TimeoutExpired:
            code, seconds = None, None
        lines = [line for line in (workers[0][1] / "stderr").read_text().splitlines() if line.strip()]
        return {"action": action, "seconds": seconds, "exit_code": code,
                "last_error_line": lines[-1][:300] if lines else "", "aborted": code == -signal.SIGABRT}
    finally:
        for process, _, files in workers:
            if process.poll() is None:
                process.send_signal(signal.SIGCONT)
                process.kill()
                process.wait()
            for f in files:
                f.close()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--trials", type=int, default=3)
    parser.add_argument("--timeouts", default="0", help="worker_timeout_seconds values, comma-separated")
    parser.add_argument("--work", type=Path, default=Path("bench-worker-loss"))
    args = parser.parse_args()
    data, records = args.work / "data", args.work / "records"
    if not (records / "manifest.json").exists():
        shadownet("synth", "--kind", "lines", "--count", 400, "--seed", 3, "--out", data)
        shadownet("tfrecords", "--dataset-dir", data, "--save-dir", records, "--input-mode", "fixed",
                  "--validation-ratio", "0")
    results = []
    for timeout in (float(t) for t in args.timeouts.split(",")):
        for action in ("kill", "freeze"):
            for number in range(args.trials):
                folder = args.work / f"t{timeout:g}-{action}-{number}"
                result = trial(folder, records, action, timeout)
                results.append({"worker_timeout_seconds": timeout, **result})
                print(json.dumps(results[-1]), file=sys.stderr)
    summary = {}
    for result in results:
        key = f"timeout={result['worker_timeout_seconds']:g} {result['action']}"
        summary.setdefault(key, []).append(result.get("seconds"))
    print(json.dumps({
        "setup": "2 workers on 127.0.0.1, shadownet_small, batch 4, CPU; worker 1 killed (SIGKILL) or frozen "
                 "(SIGSTOP) after 5 steps; seconds until worker 0 exits",
        "summary": {key: {"seconds": values, "median": statistics.median(v for v in values if v is not None)
                          if any(v is not None for v in values) else None} for key, values in summary.items()},
        "aborted": sum(1 for r in results if r.get("aborted")),
        "trials": results,
    }, indent=2))


if __name__ == "__main__":
    main()
