"""Power status of N simulated BMCs at once: nodes per second and the worst node's latency.

Starts BENCH_BMCS (default 20) ipmi_sim BMCs on 127.0.0.1, then runs BENCH_ROUNDS (default 5)
rounds in which one thread per BMC asks its power status through the ipmi driver (a session of
its own each: login, Get Chassis Status, logout). BENCH_DRIVER=redfish does the same with one
sushy-emulator serving BENCH_BMCS systems. No Django. Run: make bench-power.
"""

import os
import statistics
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor

from inventory.power.base import PowerError, get_driver
from tests.peers import sims

N = int(os.environ.get("BENCH_BMCS", "20"))
ROUNDS = int(os.environ.get("BENCH_ROUNDS", "5"))
DRIVER = os.environ.get("BENCH_DRIVER", "ipmi")


def timed_status(target):
    started = time.perf_counter()
    try:
        state = get_driver(DRIVER, target).status()
    except PowerError as error:
        state = f"failed: {error}"
    return target.label, str(state), time.perf_counter() - started


def run(targets):
    print(f"{DRIVER}: power status of {len(targets)} simulated BMCs, one thread each")
    print("round   wall s   nodes/s  median ms  worst ms  worst node")
    walls, worst = [], (0.0, "")
    with ThreadPoolExecutor(max_workers=len(targets)) as pool:
        for round_ in range(1, ROUNDS + 1):
            started = time.perf_counter()
            results = list(pool.map(timed_status, targets))
            wall = time.perf_counter() - started
            walls.append(wall)
            failed = [(label, state) for label, state, _ in results if state.startswith("failed")]
            latencies = [seconds for _, _, seconds in results]
            slowest = max(results, key=lambda result: result[2])
            worst = max(worst, (slowest[2], slowest[0]))
            print(
                f"{round_:>5}  {wall:>7.3f}  {len(targets) / wall:>8.1f}  "
                f"{statistics.median(latencies) * 1000:>9.1f}  {slowest[2] * 1000:>8.1f}  "
                f"{slowest[0]}"
            )
            for label, state in failed:
                print(f"       {label}: {state}")
    best = min(walls)
    print(
        f"best round: {len(targets) / best:.1f} nodes/s; median round: "
        f"{len(targets) / statistics.median(walls):.1f} nodes/s; worst node overall: "
        f"{worst[0] * 1000:.1f} ms ({worst[1]})"
    )


def main():
    with tempfile.TemporaryDirectory(prefix="bench-power-") as workdir:
        try:
            if DRIVER == "ipmi":
                started = time.perf_counter()
                with sims.ipmi_sims(N, workdir) as bmcs:
                    print(f"started {N} ipmi_sim in {time.perf_counter() - started:.1f} s")
                    run([bmc.target() for bmc in bmcs])
            elif DRIVER == "redfish":
                with sims.SushyEmulator(workdir, systems=N) as emulator:
                    run(emulator.targets())
            else:
                sys.exit(f"BENCH_DRIVER must be ipmi or redfish, not {DRIVER!r}")
        except sims.PeerMissing as error:
            sys.exit(str(error))


if __name__ == "__main__":
    main()
