"""Router replicas on one host: N processes behind one address, restarted when they die.

A router process keeps nothing between searches but its connections, so replicas
share nothing but the audit store (each writes its own hash chain, named ``r1``,
``r2`` ...). On one host they share the port through SO_REUSEPORT and the kernel
spreads new connections over them; across hosts a TCP (layer 4) load balancer in
front does the same, passing TLS through so each replica still sees the client
certificate (docs/architecture.md, "Scaling the router out").

The supervisor only starts, stops and restarts processes; it serves nothing itself.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from dataclasses import dataclass

from prum.federation.router.settings import RouterSettings

# A replica that dies sooner than this after starting is crash-looping: give up on it
# after MAX_QUICK_DEATHS such deaths in a row, instead of restarting it forever.
QUICK_DEATH_S = 5.0
MAX_QUICK_DEATHS = 3
STOP_TIMEOUT_S = 30.0


@dataclass
class _Replica:
    name: str
    process: subprocess.Popen[bytes]
    started: float
    quick_deaths: int = 0


def replica_environment(settings: RouterSettings, name: str) -> dict[str, str]:
    """The environment of one replica: every setting as PRUM_ROUTER_*, its own name."""
    env = dict(os.environ)
    for key, value in settings.model_dump().items():
        if value is not None:
            text = str(value).lower() if isinstance(value, bool) else str(value)
            env[f"PRUM_ROUTER_{key.upper()}"] = text
    env["PRUM_ROUTER_REPLICA"] = name
    env["PRUM_ROUTER_REUSE_PORT"] = "true"
    return env


def supervise(settings: RouterSettings, count: int) -> int:
    """Run ``count`` replicas until SIGINT/SIGTERM; the exit status for the CLI."""
    stopping = False

    def stop(*_: object) -> None:
        nonlocal stopping
        stopping = True

    signal.signal(signal.SIGINT, stop)
    signal.signal(signal.SIGTERM, stop)
    replicas = {f"r{n}": _start(settings, f"r{n}") for n in range(1, count + 1)}
    failed = False
    while not stopping and replicas:
        time.sleep(0.2)
        for name, replica in list(replicas.items()):
            code = replica.process.poll()
            if code is None or stopping:
                continue
            lived = time.monotonic() - replica.started
            quick = replica.quick_deaths + 1 if lived < QUICK_DEATH_S else 0
            if quick >= MAX_QUICK_DEATHS:
                print(
                    f"router: replica {name} exited with {code} {quick} times within"
                    f" {QUICK_DEATH_S:g} s of starting; not restarting it",
                    file=sys.stderr,
                )
                del replicas[name]
                failed = True
                continue
            print(f"router: replica {name} exited with {code}; restarting it", file=sys.stderr)
            replicas[name] = _start(settings, name)
            replicas[name].quick_deaths = quick
    for replica in replicas.values():
        replica.process.send_signal(signal.SIGTERM)
    deadline = time.monotonic() + STOP_TIMEOUT_S
    for replica in replicas.values():
        try:
            replica.process.wait(max(0.1, deadline - time.monotonic()))
        except subprocess.TimeoutExpired:
            replica.process.kill()
    return 1 if failed else 0


def _start(settings: RouterSettings, name: str) -> _Replica:
    process = subprocess.Popen(
        [sys.executable, "-m", "prum.federation.router.cli", "serve"],
        env=replica_environment(settings, name),
    )
    return _Replica(name, process, time.monotonic())
