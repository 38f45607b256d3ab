"""What kind of work a GPU kernel or a CPU operator is, from its name alone.

Rules are tried in order and the first match wins, because names nest: flash attention's kernels are built from
CUTLASS (attention before matmul), ``elementwise_kernel<direct_copy_kernel_cuda>`` is a copy (copy before
elementwise), ``triton_poi_fused__to_copy_add`` is one fused pointwise kernel (Triton before copy). Matching is on
the lower-cased name.
"""

from __future__ import annotations

CATEGORIES = ("matmul", "attention", "copy_cast", "elementwise_norm", "optimizer", "communication", "other")

# (category, substrings): the first rule with a substring in the kernel's name wins
KERNEL_RULES: tuple[tuple[str, tuple[str, ...]], ...] = (
    ("communication", ("nccl", "c10d", "allreduce", "all_reduce", "allgather", "all_gather", "reducescatter",
                       "reduce_scatter", "sendrecv")),
    # flash (Dao), cuDNN SDPA (cudnn_generated_..._sdpa_..., and its cudnn::fusion helpers), memory-efficient (fmha)
    ("attention", ("flash", "fmha", "sdpa", "attention", "attn", "mem_efficient", "memory_efficient",
                   "cudnn::fusion")),
    ("matmul", ("triton_tem",)),  # torch.compile's template kernels are matmuls
    ("elementwise_norm", ("triton_",)),  # its other kernels are fused pointwise / reduction kernels
    ("optimizer", ("adam", "multi_tensor_apply", "fused_sgd", "foreach")),
    # cuBLAS / cuBLASLt (Hopper's nvjet_*), CUTLASS, any *gemm*
    ("matmul", ("nvjet", "gemm", "cutlass", "cublas", "xmma", "matmul", "gemv", "splitkreduce")),
    ("copy_cast", ("copy", "memcpy", "memset", "convert")),  # dtype casts run as direct_copy / *_copy_kernel
    ("elementwise_norm", ("elementwise", "norm", "softmax", "reduce", "gammabeta", "gelu", "dropout", "fill",
                          "nll_loss", "cross_entropy", "activation", "relu", "silu")),
)

# CPU operators (self time); "aten::" is stripped first
CPU_RULES: tuple[tuple[str, tuple[str, ...]], ...] = (
    ("communication", ("c10d", "nccl", "gloo", "allreduce", "all_reduce", "all_gather", "reduce_scatter")),
    ("attention", ("scaled_dot_product", "attention", "flash", "sdpa")),
    ("optimizer", ("_foreach", "adam", "_fused_sgd")),
    ("matmul", ("addmm", "baddbmm", "bmm", "matmul", "linear", "mkldnn", "gemm", "addmv")),
    ("copy_cast", ("copy", "_to_", "clone", "contiguous", "cat", "stack")),
    ("elementwise_norm", ("norm", "softmax", "gelu", "relu", "silu", "tanh", "sigmoid", "dropout", "add", "mul",
                          "div", "sub", "sum", "mean", "pow", "sqrt", "log", "fill", "zero", "where",
                          "masked", "nll_loss", "cross_entropy", "neg", "clamp", "abs", "max", "min", "var", "std")),
)
_CPU_EXACT = {"mm": "matmul", "mv": "matmul", "dot": "matmul", "to": "copy_cast", "exp": "elementwise_norm",
              "exp_": "elementwise_norm"}  # names too short to match as substrings ("exp" in "expand")

GPU_EVENT_CATEGORY = {"memcpy": "copy_cast", "memset": "copy_cast"}  # memcpy and memset events, whatever their name

# an operator inside one of these host ranges is optimizer work, whatever it is (a for-loop AdamW runs aten::add_)
OPTIMIZER_RANGES = ("Optimizer.step#", "Optimizer.zero_grad#")


def _match(name: str, rules: tuple[tuple[str, tuple[str, ...]], ...]) -> str:
    for category, needles in rules:
        if any(n in name for n in needles):
            return category
    return "other"


def kernel_category(name: str) -> str:
    """The category of a GPU kernel, by name."""
    return _match(name.lower(), KERNEL_RULES)


def cpu_op_category(name: str) -> str:
    """The category of a CPU operator (``aten::addmm``, ``aten::_to_copy``, ...), by name."""
    short = name.lower().removeprefix("aten::")
    return _CPU_EXACT.get(short) or _match(short, CPU_RULES)
