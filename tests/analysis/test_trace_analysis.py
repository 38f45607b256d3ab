"""Trace analysis: busy time, categories and steps on hand-built traces known exactly, and on a real H100 trace."""

import gzip
import json
import subprocess
import sys
from pathlib import Path

import pytest

from gpt2_lightning.analysis import trace_reader
from gpt2_lightning.analysis.trace_analysis import TraceError, analyze_trace, union_length
from gpt2_lightning.analysis.categories import CATEGORIES, cpu_op_category, kernel_category
from tests.conftest import ROOT
from tests.kineto import TraceBuilder, two_step_gpu_trace

FIXTURE = Path(ROOT) / "tests" / "data" / "h100-gpt2-bf16-b8-train.pt.trace.json.gz"


# ------------------------------------------------------------------------------------------------ hand-built
def test_two_streams_memcpy_gap_nccl_and_an_empty_step(tmp_path):
    r = analyze_trace(two_step_gpu_trace().write(tmp_path / "t.json"))
    assert r["kind"] == "gpu" and r["steps"] == 2 and r["step_source"] == "host ProfilerStep ranges"
    assert r["busy_ms_by_step"] == pytest.approx([0.710, 0.0], abs=1e-9)  # the empty step is busy 0, not skipped
    assert r["gpu_busy_ms_per_step"] == pytest.approx(0.355, abs=1e-9)
    assert r["kernel_ms_per_step"] == pytest.approx(0.430, abs=1e-9)  # 860 us summed over 2 steps
    expected_us = {"matmul": 300, "attention": 200, "communication": 100, "copy_cast": 50 + 50 + 10,
                   "elementwise_norm": 100, "optimizer": 50, "other": 0}
    for cat, us in expected_us.items():
        assert r["categories"][cat]["ms_per_step"] == pytest.approx(us / 1000 / 2, abs=1e-9), cat
        assert r["categories"][cat]["pct"] == pytest.approx(100 * us / 860, abs=1e-9), cat
    assert r["communication"]["ms_per_step"] == pytest.approx(0.050, abs=1e-9)
    assert r["communication"]["overlapped_pct"] == pytest.approx(50.0, abs=1e-9)
    assert r["gpu_events"] == 9 and r["gpu_events_outside_steps"] == 1
    assert r["profiled_step_ms"] == pytest.approx(1.0)


def test_top_kernels_ranked_with_category(tmp_path):
    r = analyze_trace(two_step_gpu_trace().write(tmp_path / "t.json"))
    top = r["top_kernels"]
    assert [k["category"] for k in top[:3]] == ["matmul", "attention", "communication"]
    assert top[0]["name"].startswith("nvjet_") and top[0]["ms_per_step"] == pytest.approx(0.150)
    assert top[0]["calls_per_step"] == 0.5 and top[0]["pct"] == pytest.approx(100 * 300 / 860)
    assert [k["ms_per_step"] for k in top] == sorted((k["ms_per_step"] for k in top), reverse=True)


def test_gz_plain_bare_array_and_compact_json_give_the_same(tmp_path):
    b = two_step_gpu_trace()
    results = [analyze_trace(b.write(tmp_path / "a.json")), analyze_trace(b.write(tmp_path / "b.json.gz", gz=True)),
               analyze_trace(b.write(tmp_path / "c.json", bare=True)),
               analyze_trace(b.write(tmp_path / "d.json", indent=None))]
    for r in results[1:]:
        assert {k: v for k, v in r.items() if k != "trace"} == {k: v for k, v in results[0].items() if k != "trace"}


def test_events_cut_by_the_read_window_are_read_whole(tmp_path, monkeypatch):
    path = two_step_gpu_trace().write(tmp_path / "t.json")
    whole = analyze_trace(path)
    monkeypatch.setattr(trace_reader, "_CHUNK_CHARS", 7)  # every event, key and number spans several reads
    assert analyze_trace(path) == whole


def test_gpu_step_annotations_when_the_host_has_no_steps(tmp_path):
    """A trace whose host side lost its ProfilerStep ranges (and launches): the GPU-side annotations decide."""
    b = TraceBuilder().gpu_step(5, 0, 1000).gpu_step(6, 1000, 1500)
    b.gpu("ampere_sgemm_128x64_nn", 100, 400).gpu("ampere_sgemm_128x64_nn", 200, 400, stream=8)  # union 500
    b.gpu("void at::native::vectorized_elementwise_kernel<4, CUDAFunctor_add<float>>", 1100, 100)
    r = analyze_trace(b.write(tmp_path / "t.json"))
    assert r["step_source"] == "GPU step annotations" and r["steps"] == 2
    assert r["busy_ms_by_step"] == pytest.approx([0.5, 0.1], abs=1e-9)
    assert r["categories"]["matmul"]["pct"] == pytest.approx(100 * 800 / 900)


def test_a_trace_without_steps_is_one_step(tmp_path):
    b = TraceBuilder().gpu("gemm_kernel", 0, 100).gpu("gemm_kernel", 300, 100)
    r = analyze_trace(b.write(tmp_path / "t.json"))
    assert r["steps"] == 1 and r["step_source"].startswith("whole trace") and r["profiled_step_ms"] is None
    assert r["gpu_busy_ms_per_step"] == pytest.approx(0.2)


def test_two_devices_are_busy_each_on_their_own(tmp_path):
    b = TraceBuilder().host_step(1, 0, 1000)
    b.gpu("gemm", 0, 300, launch=1, device=0).gpu("gemm", 0, 100, launch=2, device=1)
    r = analyze_trace(b.write(tmp_path / "t.json"))
    assert r["devices"] == {"0": {"busy_ms_per_step": 0.3}, "1": {"busy_ms_per_step": 0.1}}
    assert r["gpu_busy_ms_per_step"] == pytest.approx(0.2)  # the mean over the devices


def test_cpu_trace_by_operator_self_time(tmp_path):
    b = TraceBuilder().host_step(1, 0, 2000)
    b.cpu_op("aten::linear", 0, 500).cpu_op("aten::addmm", 50, 450)  # linear self 100, addmm self 400
    b.cpu_op("aten::_to_copy", 500, 600).cpu_op("aten::copy_", 510, 590)  # self 20 and 80
    b.cpu_op("Optimizer.step#AdamW.step", 600, 900, cat="user_annotation")  # a range: context, not an operator
    b.cpu_op("aten::add_", 610, 700).cpu_op("aten::mul_", 700, 800)  # optimizer work, whatever their names
    b.cpu_op("aten::mul", 900, 950, tid=2)  # another thread (autograd's)
    b.cpu_op("aten::mm", 2500, 2600)  # after the last step: counts nowhere
    r = analyze_trace(b.write(tmp_path / "t.json"))
    assert r["kind"] == "cpu" and r["gpu_busy_ms_per_step"] is None
    ms = {c: v["ms_per_step"] * 1000 for c, v in r["categories"].items()}
    assert ms == pytest.approx({"matmul": 500, "attention": 0, "copy_cast": 100, "elementwise_norm": 50,
                                "optimizer": 190, "communication": 0, "other": 0}, abs=1e-6)
    assert r["cpu_self_ms_per_step"] == pytest.approx(0.840)
    assert r["top_ops"][0]["name"] == "aten::addmm" and r["top_ops"][0]["category"] == "matmul"
    assert {o["name"]: o["category"] for o in r["top_ops"]}["aten::add_"] == "optimizer"


def test_lightning_closure_inside_optimizer_step_is_not_optimizer_work(tmp_path):
    """Lightning runs forward and backward inside optimizer.step(closure): its nearer ranges, and backward's
    autograd operators, keep them out of the optimizer category; the update itself after them is optimizer work."""
    b = TraceBuilder().host_step(1, 0, 2000)
    b.cpu_op("Optimizer.step#AdamW.step", 0, 1000, cat="user_annotation")
    b.cpu_op("[pl][profile][Strategy]SingleDeviceStrategy.training_step", 10, 300, cat="user_annotation")
    b.cpu_op("aten::mm", 20, 220)  # forward: 200 matmul
    b.cpu_op("autograd::engine::evaluate_function: MmBackward0", 300, 700)  # backward, on the same thread (CPU)
    b.cpu_op("aten::mm", 310, 610)  # 300 matmul; the evaluate_function keeps 100 of its own (other)
    b.cpu_op("aten::add_", 700, 760)  # the update: 60 optimizer
    b.cpu_op("aten::mul", 1200, 1250)  # after optimizer.step: 50 elementwise
    r = analyze_trace(b.write(tmp_path / "t.json"))
    ms = {c: v["ms_per_step"] * 1000 for c, v in r["categories"].items() if v["ms_per_step"]}
    assert ms == pytest.approx({"matmul": 500, "other": 100, "optimizer": 60, "elementwise_norm": 50}, abs=1e-6)
    assert [(o["name"], o["category"]) for o in r["top_ops"][:1]] == [("aten::mm", "matmul")]


def test_closure_without_lightnings_ranges_the_update_starts_after_backward(tmp_path):
    """A trace of optimizer.step(closure) with no [pl] ranges (a Trainer without Lightning's profiler)."""
    b = TraceBuilder().host_step(1, 0, 2000)
    b.cpu_op("Optimizer.step#AdamW.step", 0, 1000, cat="user_annotation")
    b.cpu_op("aten::addmm", 20, 220)  # the closure's forward: matmul, not optimizer
    b.cpu_op("aten::gelu", 220, 250)  # 30 elementwise
    b.cpu_op("autograd::engine::evaluate_function: MmBackward0", 300, 700).cpu_op("aten::mm", 310, 610)
    b.cpu_op("aten::mul_", 710, 760).cpu_op("aten::addcdiv_", 760, 800)  # the update: 90 optimizer
    r = analyze_trace(b.write(tmp_path / "t.json"))
    ms = {c: v["ms_per_step"] * 1000 for c, v in r["categories"].items() if v["ms_per_step"]}
    assert ms == pytest.approx({"matmul": 500, "elementwise_norm": 30, "other": 100, "optimizer": 90}, abs=1e-6)


# ------------------------------------------------------------------------------------------------ refusals
@pytest.mark.parametrize("content, why", [
    (b"hello", "expected a JSON object or array"),
    (b'{"a": 1}', "no traceEvents"),
    (b'{"traceEvents": [{"ph": "X", "cat": "cpu_op", "name": "a", "ts": 1, "dur": 1', "invalid JSON"),
    (b'{"traceEvents": []}', "no kernels and no CPU operators"),
    (gzip.compress(b"[1, 2]"), "no kernels and no CPU operators"),
    (b"\x1f\x8bnot really gzip", "unreadable"),
])
def test_not_a_trace_is_refused_in_one_line(tmp_path, content, why):
    path = tmp_path / "x.json"
    path.write_bytes(content)
    with pytest.raises(TraceError, match=why) as info:
        analyze_trace(path)
    assert "\n" not in str(info.value) and str(path) in str(info.value)


def test_cli_refuses_a_non_trace_with_exit_2(tmp_path):
    path = tmp_path / "notes.txt"
    path.write_text("not a trace\n")
    proc = subprocess.run([sys.executable, "scripts/analyze_trace.py", str(path)], cwd=ROOT, capture_output=True,
                          text=True, timeout=60)
    assert proc.returncode == 2 and proc.stdout == ""
    assert proc.stderr.count("\n") == 1 and "not a Chrome trace" in proc.stderr


# ------------------------------------------------------------------------------------------------ categories
@pytest.mark.parametrize("name, category", [
    ("nvjet_sm90_tst_192x128_64x5_1x2_h_bz_coopB_NNT", "matmul"),
    ("sm90_xmma_gemm_bf16bf16_bf16f32_f32_tn_n_tilesize128x128x64", "matmul"),
    ("cutlass::Kernel2<cutlass_80_tensorop_s1688gemm_64x64_16x6_tn_align4>", "matmul"),
    ("ampere_sgemm_128x64_tn", "matmul"),
    ("triton_tem_fused_addmm_0", "matmul"),
    ("void flash_fwd_kernel<Flash_fwd_kernel_traits<128, 64, 128, 4, false, false, cutlass::bfloat16_t>>",
     "attention"),
    ("cudnn_generated_fort_native_sdpa_sm90_flash_fprop_wgmma_f16_knob_7_64x128x64", "attention"),
    ("void cudnn::fusion::compute_dot_do_o_specialized<true, 64>(void const*)", "attention"),
    ("fmha_cutlassF_f32_aligned_64x64_rf_sm80(PyTorchMemEffAttention::AttentionKernel)", "attention"),
    ("void at::native::unrolled_elementwise_kernel<at::native::direct_copy_kernel_cuda(at::TensorIteratorBase&)>",
     "copy_cast"),
    ("void at::native::vectorized_elementwise_kernel<8, at::native::bfloat16_copy_kernel_cuda>", "copy_cast"),
    ("void at::native::CatArrayBatchedCopy_vectorized<OpaqueType<2u>, unsigned int, 3>", "copy_cast"),
    ("void at::native::vectorized_elementwise_kernel<4, at::native::CUDAFunctor_add<float>>", "elementwise_norm"),
    ("void at::native::GammaBetaBackwardCUDAKernelTemplate<float, float>", "elementwise_norm"),
    ("void at::native::cunn_SoftMaxForward<8, c10::BFloat16, float>", "elementwise_norm"),
    ("void at::native::reduce_kernel<128, 4, at::native::ReduceOp<float, sum_functor>>", "elementwise_norm"),
    ("triton_poi_fused__to_copy_add_0", "elementwise_norm"),
    ("void at::native::multi_tensor_apply_kernel<FusedOptimizerTensorListMetadata<4>, FusedAdamMathFunctor>",
     "optimizer"),
    ("ncclDevKernel_AllReduce_Sum_f32_RING_LL(ncclDevKernelArgsStorage<4096ul>)", "communication"),
    ("void at::native::embedding_backward_feature_kernel<float, float, long>", "other"),
    ("void at::native::elementwise_kernel<128, 4, {lambda(int)#1}>(int, at::native::static_cast_op)",
     "elementwise_norm"),  # not a cast for saying static_cast
])
def test_kernel_categories(name, category):
    assert category in CATEGORIES
    assert kernel_category(name) == category


@pytest.mark.parametrize("name, category", [
    ("aten::mm", "matmul"), ("aten::addmm", "matmul"), ("aten::bmm", "matmul"),
    ("aten::_scaled_dot_product_flash_attention_for_cpu", "attention"), ("aten::copy_", "copy_cast"),
    ("aten::to", "copy_cast"), ("aten::_to_copy", "copy_cast"), ("aten::native_layer_norm", "elementwise_norm"),
    ("aten::gelu", "elementwise_norm"), ("aten::expand", "other"), ("aten::_foreach_mul_", "optimizer"),
    ("c10d::allreduce_", "communication"), ("aten::broadcast_tensors", "other"), ("aten::empty", "other"),
])
def test_cpu_operator_categories(name, category):
    assert cpu_op_category(name) == category


def test_union_length():
    assert union_length([]) == 0
    assert union_length([(0, 10), (5, 15), (20, 30), (30, 31), (2, 3)]) == 26


# ------------------------------------------------------------------------------------------------ the real trace
@pytest.fixture(scope="module")
def fixture_analysis():
    return analyze_trace(FIXTURE)


def test_fixture_busy_is_the_union_of_its_kernels_by_launching_step(fixture_analysis):
    """Recomputed here the plain way (json.load, a loop), as a reader would check it by hand."""
    events = json.load(gzip.open(FIXTURE))["traceEvents"]
    steps = sorted((e["ts"], e["ts"] + e["dur"]) for e in events
                   if e.get("cat") == "user_annotation" and e["name"].startswith("ProfilerStep#"))
    launches = {e["args"]["correlation"]: e["ts"] for e in events if e.get("cat") in ("cuda_runtime", "cuda_driver")}
    per_step, unlaunched = [[] for _ in steps], 0
    for e in events:
        if e.get("cat") in ("kernel", "gpu_memcpy", "gpu_memset"):
            t = launches.get(e["args"]["correlation"])
            if t is None:  # launched before the profiler started: it ran before the first step's work
                unlaunched += 1
                continue
            for i, (s, end) in enumerate(steps):
                if s <= t <= end:
                    per_step[i].append((e["ts"], e["ts"] + e["dur"]))
    busy = [union_length(iv) / 1000 for iv in per_step]
    assert fixture_analysis["steps"] == 5
    assert unlaunched == fixture_analysis["gpu_events_outside_steps"] == 2
    # abs 1e-4 ms: this loop sums absolute timestamps (~4.9e12 us, 1 ns resolution each) over ~800 kernels a step
    assert fixture_analysis["busy_ms_by_step"] == pytest.approx(busy, abs=1e-4)
    assert fixture_analysis["gpu_busy_ms_per_step"] == pytest.approx(26.053, abs=0.001)
    # one stream: busy equals the plain sum
    assert fixture_analysis["kernel_ms_per_step"] == pytest.approx(sum(e - s for iv in per_step for s, e in iv) / 5000,
                                                                  abs=1e-4)


def test_fixture_categories(fixture_analysis):
    cats = fixture_analysis["categories"]
    assert sum(c["pct"] for c in cats.values()) == pytest.approx(100.0)
    assert cats["matmul"]["pct"] == pytest.approx(32.90, abs=0.01)
    assert cats["copy_cast"]["pct"] == pytest.approx(19.25, abs=0.01)
    assert cats["attention"]["pct"] == pytest.approx(9.26, abs=0.01)
    assert cats["communication"]["ms_per_step"] == 0
    events = json.load(gzip.open(FIXTURE))["traceEvents"]
    nvjet = {e["name"] for e in events if e.get("cat") == "kernel" and e["name"].startswith("nvjet_")}
    assert len(nvjet) >= 10 and {kernel_category(n) for n in nvjet} == {"matmul"}
    assert {k["category"] for k in fixture_analysis["top_kernels"] if k["name"].startswith("nvjet_")} == {"matmul"}


# ------------------------------------------------------------------------------------------------ a plain loop
def test_a_plain_torch_profiler_loop_trace(tmp_path):
    """Not Lightning's: torch.profiler.profile(schedule=...) around a hand-written loop, exported by torch itself."""
    import torch

    model = torch.nn.Sequential(torch.nn.Linear(64, 256), torch.nn.GELU(), torch.nn.Linear(256, 64))
    opt = torch.optim.AdamW(model.parameters(), foreach=False)
    path = tmp_path / "loop.pt.trace.json"
    schedule = torch.profiler.schedule(wait=1, warmup=1, active=2, repeat=1)
    with torch.profiler.profile(activities=[torch.profiler.ProfilerActivity.CPU], schedule=schedule,
                                on_trace_ready=lambda p: p.export_chrome_trace(str(path))) as prof:
        for _ in range(4):
            loss = model(torch.randn(32, 64)).pow(2).mean()
            loss.backward()
            opt.step()
            opt.zero_grad()
            prof.step()
    r = analyze_trace(path)
    assert r["kind"] == "cpu" and r["steps"] == 2 and r["step_source"] == "host ProfilerStep ranges"
    for cat in ("matmul", "elementwise_norm", "optimizer"):
        assert r["categories"][cat]["ms_per_step"] > 0, cat
    assert {o["category"] for o in r["top_ops"] if o["name"] in ("aten::addmm", "aten::mm")} == {"matmul"}


def test_cpu_optimizer_work_at_any_depth_and_a_cut_off_closure(tmp_path):
    """Lightning-shaped CPU trace, hand-built (us). Step 1: optimizer.step(closure) with the closure's training_step
    and backward inside, then the update under a nested range (this tool's phase/optimizer): its 30 + 20 us are
    optimizer time. Step 2: the trace ends in the middle of the next closure, so its Optimizer.step range holds only
    a forward: none of it is optimizer time. Lightning's first ProfilerStep (a warm-up step's backward) is left out."""
    b = TraceBuilder().host_step(1, 0, 100).host_step(2, 100, 300).host_step(3, 300, 400)
    b.cpu_op("[pl][profile][Strategy]SingleDeviceStrategy.training_step", 1, 20, cat="user_annotation")
    b.cpu_op("aten::mul_", 50, 90)  # the warm-up step's update: in the left-out first range
    b.cpu_op("Optimizer.step#AdamW.step", 101, 290, cat="user_annotation")
    b.cpu_op("[pl][profile][Strategy]SingleDeviceStrategy.training_step", 102, 150, cat="user_annotation")
    b.cpu_op("aten::addmm", 103, 140)  # forward: 37 us
    b.cpu_op("[pl][profile][Strategy]SingleDeviceStrategy.backward", 151, 220, cat="user_annotation")
    b.cpu_op("autograd::engine::evaluate_function: AddmmBackward0", 152, 210)  # backward: 58 us
    b.cpu_op("phase/optimizer", 221, 289, cat="user_annotation")
    b.cpu_op("[pl][profile][LightningModule]M.configure_gradient_clipping", 222, 260, cat="user_annotation")
    b.cpu_op("aten::mul_", 223, 253)  # the update, two ranges deep: 30 us
    b.cpu_op("aten::lerp_", 262, 282)  # 20 us
    b.cpu_op("Optimizer.step#AdamW.step", 301, 400, cat="user_annotation")  # cut off by the trace's end
    b.cpu_op("[pl][profile][Strategy]SingleDeviceStrategy.training_step", 302, 399, cat="user_annotation")
    b.cpu_op("aten::addmm", 303, 363)  # the next forward: 60 us
    r = analyze_trace(b.write(tmp_path / "t.json"))
    assert r["steps"] == 2 and "left out" in r["step_source"]
    cats = {k: v["ms_per_step"] * 2 * 1000 for k, v in r["categories"].items()}  # us over both steps
    assert cats["optimizer"] == pytest.approx(50.0)
    assert cats["matmul"] == pytest.approx(37.0 + 58.0 + 60.0)  # forward, AddmmBackward0, the cut-off forward


def test_call_counts_print_as_counts():
    from gpt2_lightning.report.diagnosis import format_text, markdown

    d = {"trace": "t.json", "steps": 2, "step_source": "ProfilerStep", "kind": "cpu", "cpu_self_ms_per_step": 1.0,
         "categories": {c: {"ms_per_step": 0.5, "pct": 10.0} for c in CATEGORIES},
         "top_ops": [{"name": "aten::addmm", "category": "matmul", "ms_per_step": 0.4, "calls_per_step": 35.0,
                      "pct": 40.0},
                     {"name": "aten::mul", "category": "elementwise_norm", "ms_per_step": 0.1, "calls_per_step": 35.5,
                      "pct": 10.0}]}
    rows = [line for line in format_text(d).splitlines() if "aten::" in line]
    assert rows[0].split()[1] == "35" and rows[1].split()[1] == "35.5"  # not 35.0
    assert "| 0.400 | 35 | 40.0 |" in "\n".join(markdown(d))
