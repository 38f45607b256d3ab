"""Two CPU processes (DDP over gloo) train a small MLP under torch.profiler with module ranges; rank 1 sleeps
``--sleep-ms`` before each forward, outside any module, so that rank 0 waits for it in the gradient all-reduce.

Run by tests/analysis/test_ddp_breakdown.py as a script. Each rank writes ``<out>/rank<r>.json`` (its trace) and
``<out>/slept<r>.json`` (its sleeps as they really ran, in ms).
"""

import argparse
import json
import os
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))  # the repository: callbacks/

import torch  # noqa: E402
import torch.distributed as dist  # noqa: E402
import torch.multiprocessing as mp  # noqa: E402
from torch.nn.parallel import DistributedDataParallel as DDP  # noqa: E402

from callbacks.module_hooks import ModuleRanges  # noqa: E402 - torch only: no Lightning to import

WARMUP, STEPS = 2, 3


def run(rank: int, out: str, port: int, sleep_ms: float) -> None:
    os.environ["MASTER_ADDR"], os.environ["MASTER_PORT"] = "127.0.0.1", str(port)
    torch.set_num_threads(1)
    dist.init_process_group("gloo", rank=rank, world_size=2)
    torch.manual_seed(0)
    net = torch.nn.Sequential(torch.nn.Linear(32, 64), torch.nn.GELU(), torch.nn.Linear(64, 1))
    model = DDP(net)
    opt = torch.optim.AdamW(model.parameters())
    x, y = torch.randn(16, 32), torch.randn(16, 1)
    slept = []
    schedule = torch.profiler.schedule(wait=0, warmup=WARMUP, active=STEPS, repeat=1)
    with ModuleRanges(model), torch.profiler.profile(
            activities=[torch.profiler.ProfilerActivity.CPU], schedule=schedule,
            on_trace_ready=lambda p: p.export_chrome_trace(f"{out}/rank{rank}.json")) as prof:
        for _ in range(WARMUP + STEPS):
            if rank == 1:
                t = time.perf_counter()
                time.sleep(sleep_ms / 1000)
                slept.append(1000 * (time.perf_counter() - t))
            loss = torch.nn.functional.mse_loss(model(x), y)
            loss.backward()
            opt.step()
            opt.zero_grad()
            prof.step()
    Path(out, f"slept{rank}.json").write_text(json.dumps(slept[-STEPS:]))
    dist.destroy_process_group()


if __name__ == "__main__":
    p = argparse.ArgumentParser()
    p.add_argument("--out", required=True)
    p.add_argument("--port", type=int, required=True)
    p.add_argument("--sleep-ms", type=float, required=True)
    a = p.parse_args()
    mp.start_processes(run, args=(a.out, a.port, a.sleep_ms), nprocs=2, start_method="fork")  # imports done once
