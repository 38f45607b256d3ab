#!/usr/bin/env python
"""How long the trace analysis takes on a large trace: python scripts/bench_analyze_trace.py [--mb 200] [--gz]

Writes a synthetic torch.profiler (Kineto) trace of about --mb megabytes, laid out and mixed like a real one (per
kernel: a CPU operator with a child operator, a cudaLaunchKernel, its kernel, two flow events; plus view-like operators
with no kernel, memsets and a memcpy per step; two streams), then times ``analyze_trace`` on it in this process and
reports seconds, events per second and the peak resident memory. A benchmark, not a test: run it on an idle core
(``taskset -c 0 python scripts/bench_analyze_trace.py``) to quote its figure.
"""

import argparse
import gzip
import os
import resource
import sys
import tempfile
import time
from pathlib import Path

import _bootstrap  # noqa: F401  (first: repository on sys.path, this folder off it)

_KERNELS = ("nvjet_sm90_tst_192x128_64x5_1x2_h_bz_coopB_NNT",
            "void at::native::unrolled_elementwise_kernel<at::native::direct_copy_kernel_cuda(at::TensorIteratorBase&)"
            "::{lambda()#3}::operator()() const::{lambda()#7}::operator()() const::{lambda(float)#1}, std::array<char*,"
            " 2ul>, 4, TrivialOffsetCalculator<1, unsigned int>, TrivialOffsetCalculator<1, unsigned int>, "
            "at::native::memory::LoadWithCast<1>, at::native::memory::StoreWithCast<1> >",
            "cudnn_generated_fort_native_sdpa_sm90_flash_fprop_wgmma_f16_knob_7_64x128x64_4x1x1_cga1x1x1_kernel0_0",
            "void at::native::(anonymous namespace)::vectorized_layer_norm_kernel<float, float, false>(int, float, "
            "float const*, float const*, float const*, float*, float*, float*)")
_OPS = ("aten::linear", "aten::to", "aten::scaled_dot_product_attention", "aten::layer_norm")
_CHILD = ("aten::addmm", "aten::_to_copy", "aten::_scaled_dot_product_cudnn_attention", "aten::native_layer_norm")
_BASE = 4895423452670.632


def _op(name, ts, dur, ext, tid=808):
    return (f'  {{\n    "ph": "X", "cat": "cpu_op", "name": "{name}", "pid": 706, "tid": {tid},\n    "ts": {ts:.3f}, '
            f'"dur": {dur:.3f},\n    "args": {{\n      "External id": {ext},"Record function id": 0, "Sequence number"'
            f': {ext}, "Fwd thread id": 1, "Ev Idx": {ext}\n    }}\n  }}')


def _gpu(cat, name, ts, dur, ext, corr, stream):
    return (f'  {{\n    "ph": "X", "cat": "{cat}", "name": "{name}", "pid": 0, "tid": {stream},\n    "ts": {ts:.3f}, '
            f'"dur": {dur:.3f},\n    "args": {{\n      "External id": {ext}, "queued": 0, "device": 0, "context": 1,\n'
            f'      "stream": {stream}, "correlation": {corr}, "registers per thread": 32, "shared memory": 0,\n'
            f'      "blocks per SM": 0.007576, "warps per SM": 0.030303, "grid": [1, 1, 1], "block": [128, 1, 1],\n'
            f'      "est. achieved occupancy %": 0\n    }}\n  }}')


def _launch(ts, ext, corr):
    return (f'  {{\n    "ph": "X", "cat": "cuda_runtime", "name": "cudaLaunchKernel", "pid": 706, "tid": 808,\n'
            f'    "ts": {ts:.3f}, "dur": 4.100,\n    "args": {{\n      "External id": {ext}, "cbid": 211, '
            f'"correlation": {corr}\n    }}\n  }},\n  {{\n    "ph": "s", "id": {corr}, "pid": 706, "tid": 808, "ts": '
            f'{ts:.3f},\n    "cat": "ac2g", "name": "ac2g"\n  }},\n  {{\n    "ph": "f", "id": {corr}, "pid": 0, '
            f'"tid": 7, "ts": {ts + 20:.3f},\n    "cat": "ac2g", "name": "ac2g", "bp": "e"\n  }}')


def write_trace(path: Path, target_bytes: int, gz: bool) -> tuple[int, int]:
    """(events, steps) written; each step is 1,000 kernels launched over 30 ms of host time."""
    opener = gzip.open if gz else open
    events = steps = 0
    ext = corr = 0
    with opener(path, "wt", encoding="utf-8") as f:
        f.write('{\n  "schemaVersion": 1,\n  "deviceProperties": [{"id": 0, "name": "synthetic"}],\n'
                '  "traceEvents": [\n')
        first = True
        written = 0
        while written < target_bytes:
            t0 = _BASE + steps * 30_000.0
            chunk = [_op(f"ProfilerStep#{steps + 2}", t0, 29_990.0, ext, tid=706).replace('"cpu_op"',
                                                                                          '"user_annotation"')]
            for k in range(1_000):
                ext += 1
                corr += 1
                t, i = t0 + 5 + k * 29.0, k % 4
                chunk.append(_op(_OPS[i], t, 20.0, ext))
                chunk.append(_op(_CHILD[i], t + 2, 15.0, ext))
                chunk.append(_op("aten::view", t + 18, 1.0, ext))
                chunk.append(_launch(t + 4, ext, corr))
                chunk.append(_gpu("kernel", _KERNELS[i], t + 25, 24.0, ext, corr, 7 + (k % 2)))
                events += 7
            corr += 1
            chunk.append(_gpu("gpu_memcpy", "Memcpy HtoD (Pinned -> Device)", t0 + 1, 3.0, ext, corr, 7))
            chunk.append(_launch(t0, ext, corr))
            events += 5
            text = ",\n".join(chunk)
            f.write(text if first else ",\n" + text)
            written += len(text)
            first = False
            steps += 1
        f.write('\n  ],\n  "traceName": "synthetic"\n}\n')
    return events, steps


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(prog="bench_analyze_trace.py", description=__doc__.split("\n\n")[0])
    parser.add_argument("--mb", type=float, default=200.0, help="size of the (uncompressed) trace in MB (default 200)")
    parser.add_argument("--gz", action="store_true", help="write it gzip-compressed, as torch.profiler can")
    parser.add_argument("--keep", default=None, help="write the trace here and keep it (default: a temporary file)")
    args = parser.parse_args(argv)
    # plain Python: neither torch nor Lightning is loaded, so their start-up time and memory stay out of the figures
    from gpt2_lightning.analysis.trace_analysis import analyze_trace

    with tempfile.TemporaryDirectory() as tmp:
        path = Path(args.keep or Path(tmp) / ("bench.pt.trace.json" + (".gz" if args.gz else "")))
        events, steps = write_trace(path, int(args.mb * 1e6), args.gz)
        size = os.path.getsize(path)
        rss_before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
        start = time.perf_counter()
        result = analyze_trace(path)
        seconds = time.perf_counter() - start
        rss_after = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(f"trace: {size / 1e6:.1f} MB on disk{' (gzip)' if args.gz else ''}, {events:,} events, {steps} steps")
    print(f"analyze_trace: {seconds:.1f} s ({events / seconds / 1e3:.0f}k events/s); peak RSS {rss_after:.0f} MiB "
          f"(before the analysis {rss_before:.0f} MiB)")
    print(f"result: {result['steps']} steps, GPU busy {result['gpu_busy_ms_per_step']:.3f} ms per step, "
          f"{result['gpu_events']:,} GPU events")
    return 0


if __name__ == "__main__":
    sys.exit(main())
