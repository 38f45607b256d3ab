"""Hand-built torch.profiler (Kineto) traces whose busy time and categories are known exactly.

Times are microseconds, as in real traces. A GPU event is launched from the host (a ``cudaLaunchKernel`` with the same
correlation id) at ``launch``, which decides its step, and runs at ``[start, start + dur)`` on the device.
"""

from __future__ import annotations

import gzip
import json
from pathlib import Path
from typing import Any

BASE = 1_000_000_000.0  # real traces use large absolute timestamps: the analysis must not lose precision on them


class TraceBuilder:
    def __init__(self) -> None:
        self.events: list[dict[str, Any]] = []
        self._corr = 100

    def host_step(self, n: int, start: float, end: float) -> "TraceBuilder":
        self.events.append({"ph": "X", "cat": "user_annotation", "name": f"ProfilerStep#{n}", "pid": 1, "tid": 1,
                            "ts": BASE + start, "dur": end - start, "args": {}})
        return self

    def gpu_step(self, n: int, start: float, end: float, device: int = 0) -> "TraceBuilder":
        self.events.append({"ph": "X", "cat": "gpu_user_annotation", "name": f"ProfilerStep#{n}", "pid": device,
                            "tid": 7, "ts": BASE + start, "dur": end - start, "args": {}})
        return self

    def gpu(self, name: str, start: float, dur: float, launch: float | None = None, stream: int = 7,
            cat: str = "kernel", device: int = 0) -> "TraceBuilder":
        self._corr += 1
        args = {"device": device, "stream": stream, "correlation": self._corr}
        self.events.append({"ph": "X", "cat": cat, "name": name, "pid": device, "tid": stream, "ts": BASE + start,
                            "dur": dur, "args": args})
        if launch is not None:
            self.events.append({"ph": "X", "cat": "cuda_runtime", "name": "cudaLaunchKernel", "pid": 1, "tid": 1,
                                "ts": BASE + launch, "dur": 3.0, "args": {"correlation": self._corr}})
            self.events.append({"ph": "s", "id": self._corr, "pid": 1, "tid": 1, "ts": BASE + launch, "cat": "ac2g",
                                "name": "ac2g"})
        return self

    def cpu_op(self, name: str, start: float, end: float, tid: int = 1, cat: str = "cpu_op") -> "TraceBuilder":
        self.events.append({"ph": "X", "cat": cat, "name": name, "pid": 1, "tid": tid, "ts": BASE + start,
                            "dur": end - start, "args": {}})
        return self

    def write(self, path: Path, gz: bool = False, bare: bool = False, indent: int | None = 2) -> Path:
        doc: Any = self.events if bare else {"schemaVersion": 1, "deviceProperties": [{"id": 0, "name": "X"}],
                                             "traceEvents": self.events, "traceName": str(path)}
        text = json.dumps(doc, indent=indent)
        if gz:
            with gzip.open(path, "wt", encoding="utf-8") as f:
                f.write(text)
        else:
            path.write_text(text)
        return path


def two_step_gpu_trace() -> TraceBuilder:
    """Two host steps of 1000 us; all GPU work is launched in step 1, step 2 launches nothing.

    Step 1's device timeline (us):
        [100, 400) nvjet matmul, stream 7       |  [300, 500) flash attention, stream 8 (overlaps the matmul by 100)
        [450, 550) NCCL all-reduce, stream 9 (50 of it under the attention kernel)
        [600, 650) memcpy HtoD                  |  gap [650, 700)
        [700, 750) direct_copy (a cast)         |  [750, 850) layer norm
        [1050, 1100) fused Adam, launched at 950 in step 1 but run during step 2's host time
        [1100, 1110) memset
    Busy: [100, 550) + [600, 650) + [700, 850) + [1050, 1110) = 450 + 50 + 150 + 60 = 710 us.
    Summed: 300 + 200 + 100 + 50 + 50 + 100 + 50 + 10 = 860 us.
    A kernel launched after the last step ends is outside the steps and counts nowhere.
    """
    b = TraceBuilder().host_step(1, 0, 1000).host_step(2, 1000, 2000)
    b.gpu("nvjet_sm90_tst_128x128_64x6_2x4_h_bz_NTT", 100, 300, launch=10)
    b.gpu("void flash_fwd_kernel<Flash_fwd_kernel_traits<64, cutlass::bfloat16_t>>", 300, 200, launch=20, stream=8)
    b.gpu("ncclDevKernel_AllReduce_Sum_f32_RING_LL(ncclDevKernelArgsStorage<4096ul>)", 450, 100, launch=30,
          stream=9)
    b.gpu("Memcpy HtoD (Pinned -> Device)", 600, 50, launch=40, cat="gpu_memcpy")
    b.gpu("void at::native::unrolled_elementwise_kernel<at::native::direct_copy_kernel_cuda>", 700, 50, launch=50)
    b.gpu("void at::native::vectorized_layer_norm_kernel<float, float, false>", 750, 100, launch=60)
    b.gpu("void at::native::multi_tensor_apply_kernel<FusedAdamMathFunctor<float>>", 1050, 50, launch=950)
    b.gpu("Memset (Device)", 1100, 10, launch=960, cat="gpu_memset")
    b.gpu("void at::native::vectorized_layer_norm_kernel<float, float, false>", 2600, 500, launch=2500)
    return b
