"""Which HTTP client should the router fan out with? CPU per request, side by side.

28 stand-in nodes (mutual TLS, one separate process) answer every POST at once with
a 33 KB body (a reply with one candidate image). The client process sends rounds of
28 concurrent POSTs of an 80 KB body (a signed face search), one per node, over
persistent connections, and we count the client process's CPU time per request:

- httpx 0.28 (the router's client until this benchmark), one AsyncClient per node;
- aiohttp, one ClientSession (its connector keeps connections per host);
- prum.federation.router.http11, the router's own lean client (httptools parser);

each on asyncio's own event loop and on uvloop. Same nodes, same run, interleaved
rounds, so the ratios hold even on a busy machine.

    .venv/bin/python bench/fanout_clients.py [--rounds 200]

Writes bench/results/fanout_clients.json and a section of docs/benchmarks.md.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import signal
import ssl
import subprocess
import sys
import tempfile
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

from prum.demo.processes import free_port
from prum.federation.security.pki import client_context, init_ca, issue, server_context
from report import write_json, write_section
from router import TARGETS

PARTIES = TARGETS  # the 27 member states and Europol
NODES = len(PARTIES)
REQUEST = os.urandom(60 * 1024).hex()[: 80 * 1024].encode()  # an 80 KB body
REPLY = b'{"reply":"' + b"x" * (33 * 1024) + b'"}'
Client = Callable[[], Awaitable[None]]


def node_server(spec_file: str) -> None:
    """The stand-in nodes: answer every request at once with REPLY."""
    from prum.federation.transport import Listener, serve_many

    async def app(scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            return
        more = True
        while more:
            message = await receive()
            more = message.get("more_body", False)
        await send(
            {
                "type": "http.response.start",
                "status": 200,
                "headers": [(b"content-type", b"application/json")],
            }
        )
        await send({"type": "http.response.body", "body": REPLY})

    spec = json.loads(Path(spec_file).read_text())
    pki = Path(spec["pki"])
    serve_many(
        *(
            Listener(app, "127.0.0.1", port, server_context(pki, party))
            for party, port in zip(PARTIES, spec["ports"], strict=True)
        )
    )


async def httpx_client(ports: list[int], tls: ssl.SSLContext) -> tuple[Client, Client]:
    import httpx

    limits = httpx.Limits(max_connections=None, max_keepalive_connections=32)
    clients = [httpx.AsyncClient(verify=tls, limits=limits) for _ in ports]

    async def one_round() -> None:
        async def post(client: httpx.AsyncClient, port: int) -> None:
            response = await client.post(
                f"https://localhost:{port}/v1/search",
                content=REQUEST,
                headers={"content-type": "application/json"},
            )
            assert response.status_code == 200 and len(response.content) == len(REPLY)

        await asyncio.gather(*(post(c, p) for c, p in zip(clients, ports, strict=True)))

    async def close() -> None:
        for client in clients:
            await client.aclose()

    return one_round, close


async def aiohttp_client(ports: list[int], tls: ssl.SSLContext) -> tuple[Client, Client]:
    import aiohttp

    session = aiohttp.ClientSession(connector=aiohttp.TCPConnector(ssl=tls, limit=0))

    async def one_round() -> None:
        async def post(port: int) -> None:
            async with session.post(
                f"https://localhost:{port}/v1/search",
                data=REQUEST,
                headers={"content-type": "application/json"},
            ) as response:
                body = await response.read()
                assert response.status == 200 and len(body) == len(REPLY)

        await asyncio.gather(*(post(p) for p in ports))

    return one_round, session.close


async def lean_client(ports: list[int], tls: ssl.SSLContext) -> tuple[Client, Client]:
    from prum.federation.router.http11 import Pool

    pools = [Pool("127.0.0.1", port, tls, server_hostname="localhost") for port in ports]

    async def one_round() -> None:
        async def post(pool: Pool) -> None:
            answer = await pool.post("/v1/search", REQUEST, limit=1 << 20)
            assert answer.status == 200 and len(answer.body) == len(REPLY)

        await asyncio.gather(*(post(pool) for pool in pools))

    async def close() -> None:
        for pool in pools:
            pool.close()

    return one_round, close


CANDIDATES = {"httpx": httpx_client, "aiohttp": aiohttp_client, "prum http11": lean_client}


async def measure(ports: list[int], tls: ssl.SSLContext, rounds: int) -> dict[str, float]:
    clients = {name: await make(ports, tls) for name, make in CANDIDATES.items()}
    for one_round, _ in clients.values():  # connections and TLS sessions up, code warm
        for _ in range(3):
            await one_round()
    cpu = dict.fromkeys(clients, 0.0)
    for _ in range(rounds):  # interleaved, so a noisy moment hits every client alike
        for name, (one_round, _) in clients.items():
            started = time.process_time()
            await one_round()
            cpu[name] += time.process_time() - started
    for _, close in clients.values():
        await close()
    return {name: round(seconds * 1e6 / (rounds * len(ports)), 1) for name, seconds in cpu.items()}


def run(loop_name: str, ports: list[int], tls: ssl.SSLContext, rounds: int) -> dict[str, float]:
    if loop_name == "uvloop":
        import uvloop

        return uvloop.run(measure(ports, tls, rounds))
    return asyncio.run(measure(ports, tls, rounds))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rounds", type=int, default=200)
    args = parser.parse_args()
    work = Path(tempfile.mkdtemp(prefix="prum-bench-clients-"))
    pki = work / "pki"
    init_ca(pki)
    issue(pki, "ROUTER", role="router")
    for party in PARTIES:
        issue(pki, party, role="node")
    ports = [free_port() for _ in range(NODES)]
    (work / "nodes.json").write_text(json.dumps({"pki": str(pki), "ports": ports}))
    env = {**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parents[1] / "src")}
    command = [sys.executable, __file__, "--nodes", str(work / "nodes.json")]
    nodes = subprocess.Popen(command, env=env)
    try:
        time.sleep(3)
        tls = client_context(pki, "ROUTER")
        figures = {loop: run(loop, ports, tls, args.rounds) for loop in ("asyncio", "uvloop")}
    finally:
        nodes.send_signal(signal.SIGTERM)
        nodes.wait(30)
    result = {
        "nodes": NODES,
        "request_bytes": len(REQUEST),
        "reply_bytes": len(REPLY),
        "rounds": args.rounds,
        "client_cpu_us_per_request": figures,
    }
    print(json.dumps(result, indent=2))
    print(f"wrote {write_json('fanout_clients', result)}")
    write_section("fanout_clients", markdown(result))


def markdown(r: dict[str, Any]) -> str:
    figures = r["client_cpu_us_per_request"]
    names = list(figures["asyncio"])
    rows = "\n".join(
        f"| {name} | {figures['asyncio'][name]} | {figures['uvloop'][name]} |" for name in names
    )
    best = min(figures["uvloop"].values())
    return f"""## Router fan-out: HTTP clients side by side (`bench/fanout_clients.py`)

CPU of the client process per request: {r["rounds"]} rounds of {r["nodes"]} concurrent POSTs
({r["request_bytes"] // 1024} KB body) to {r["nodes"]} stand-in nodes over mutual TLS and
persistent connections, each answering at once with {r["reply_bytes"] // 1024} KB.
Interleaved rounds, one run; the nodes run in another process.

| client | asyncio loop, µs/request | uvloop, µs/request |
|---|---|---|
{rows}

The router fans out with the fastest ({best} µs per request, so
{best * r["nodes"] / 1000:.1f} ms of CPU for the {r["nodes"]} requests of one search).
"""


if __name__ == "__main__":
    if len(sys.argv) == 3 and sys.argv[1] == "--nodes":
        node_server(sys.argv[2])
    else:
        main()
