"""What a gateway and its embedded store spend doing nothing: seven change streams followed,
workers polling at the default interval, no requests. No baseline: the reference is zero."""

from __future__ import annotations

import time

from bench.common import cpu_seconds, fake_graph, gateway, median, store_pid, table


def run(seconds: float, runs: int) -> str:
    seconds = max(seconds, 5.0)  # idle costs are small: measure long enough to see them
    shares: list[tuple[float, float]] = []
    with fake_graph() as graph, gateway(graph, WORKER_POLL_SECONDS="1") as gw:
        pids = (gw.proc.pid, store_pid(gw))
        time.sleep(1)  # start-up is over
        for _ in range(runs):
            before = [cpu_seconds(pid) for pid in pids]
            time.sleep(seconds)
            gateway_cpu, store_cpu = ((cpu_seconds(pid) - start) / seconds
                                      for pid, start in zip(pids, before))
            shares.append((gateway_cpu, store_cpu))
    return table(f"Idle: share of one core, over {seconds:g} s with nothing to do",
                 ["target", "gateway CPU", "store CPU"],
                 [["gateway on embedded nx-27017", f"{median([s[0] for s in shares]):.1%}",
                   f"{median([s[1] for s in shares]):.1%}"]])
