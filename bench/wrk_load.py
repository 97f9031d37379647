"""Load from wrk (C, one thread) for ``api_latency.py``, and CPU time read from ``/proc``.

A Python client burns about a core to send a few hundred requests a second, and on a small
machine that core is taken from the server it measures; wrk sends the same requests for a
small fraction of that. The Lua script draws the same kind of pages as the Python client
(``offset`` anywhere, ``order_by`` alternating trial_number and value), checks every
response's status and ``total``, counts the items of every 50th, and prints its figures
as one ``WRK_JSON {...}`` line. Latencies are client-side, per request, body included.
"""

from __future__ import annotations

import json
import os
import resource
import shutil
import subprocess
import tempfile
from collections.abc import Iterable
from pathlib import Path
from typing import Any

LUA = r"""
local threads = {}
function setup(thread)
  thread:set("id", #threads)
  table.insert(threads, thread)
end
function init(args)
  path, marker, last_start, items = args[1], args[2], tonumber(args[3]), tonumber(args[5])
  math.randomseed(tonumber(args[4]) + 7919 * id)
  headers = {["Authorization"] = "Bearer " .. os.getenv("WRK_TOKEN")}
  sent, seen, bad, first_bad = 0, 0, 0, ""
end
function request()
  sent = sent + 1
  local order = (sent % 2 == 1) and "trial_number" or "value"
  local offset = math.random(0, last_start)
  return wrk.format("GET", path .. "?limit=" .. items .. "&offset=" .. offset .. "&order_by="
    .. order, headers)
end
function response(status, headers, body)
  seen = seen + 1
  local ok = status == 200 and string.find(body, marker, 1, true) ~= nil
  if ok and seen % 50 == 0 then
    ok = select(2, string.gsub(body, '"trial_number":', "")) == items
  end
  if not ok then
    bad = bad + 1
    if first_bad == "" then first_bad = status .. " " .. string.sub(body, 1, 300) end
  end
end
function done(summary, latency, requests)
  local bad, first = 0, ""
  for _, t in ipairs(threads) do
    bad = bad + t:get("bad")
    if first == "" then first = t:get("first_bad") end
  end
  local e = summary.errors
  io.write(string.format('WRK_JSON {"requests": %d, "duration_us": %d, "p50_us": %d, '
    .. '"p95_us": %d, "p99_us": %d, "max_us": %d, "socket_errors": %d, "bad": %d}\n',
    summary.requests, summary.duration, latency:percentile(50), latency:percentile(95),
    latency:percentile(99), latency.max, e.connect + e.read + e.write + e.timeout, bad))
  if first ~= "" then io.stderr:write("first bad response: " .. first .. "\n") end
end
"""


def wrk_path() -> str | None:
    return shutil.which("wrk")


def run_wrk(
    base_url: str,
    path: str,
    token: str,
    *,
    clients: int,
    duration_s: float,
    total: int,
    page_size: int,
    last_start: int,
    seed: int,
) -> dict[str, Any]:
    """One wrk run; its figures (``requests``, ``*_us``, ``bad``...) and ``client_cpu_s``."""
    wrk = wrk_path()
    if wrk is None:
        raise RuntimeError("wrk is not installed (apt-get install -y wrk)")
    marker = f',"total":{total},"limit":{page_size},'
    with tempfile.NamedTemporaryFile("w", suffix=".lua", delete=False) as script:
        script.write(LUA)
    try:
        options = ["-t1", f"-c{clients}", f"-d{max(1, round(duration_s))}s", "--timeout", "30s"]
        script_args = [path, marker, str(last_start), str(seed), str(page_size)]
        command = [wrk, *options, "-s", script.name, base_url, "--", *script_args]
        before = resource.getrusage(resource.RUSAGE_CHILDREN)
        done = subprocess.run(
            command,
            capture_output=True,
            text=True,
            check=False,
            env={**os.environ, "WRK_TOKEN": token},
        )
        after = resource.getrusage(resource.RUSAGE_CHILDREN)
    finally:
        Path(script.name).unlink()
    lines = [line for line in done.stdout.splitlines() if line.startswith("WRK_JSON ")]
    if done.returncode != 0 or not lines:
        raise RuntimeError(f"wrk failed ({done.returncode}): {done.stderr or done.stdout}")
    figures: dict[str, Any] = json.loads(lines[-1].removeprefix("WRK_JSON "))
    figures["first_bad"] = done.stderr.strip()
    figures["client_cpu_s"] = (after.ru_utime + after.ru_stime) - (
        before.ru_utime + before.ru_stime
    )
    return figures


def children(pid: int) -> list[int]:
    """``pid`` and its direct children (uvicorn's supervisor and its workers)."""
    found = [pid]
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                fields = (entry / "stat").read_text().rsplit(")", 1)[1].split()
            except OSError:
                continue
            if int(fields[1]) == pid:
                found.append(int(entry.name))
    return found


def cpu_seconds(pids: Iterable[int]) -> float | None:
    """User + system CPU seconds of these processes so far; None if /proc cannot tell."""
    ticks, total = os.sysconf("SC_CLK_TCK"), 0
    for pid in pids:
        try:
            fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            return None
        total += int(fields[11]) + int(fields[12])
    return total / ticks
