"""Reading torch.profiler traces: where the time of a profiled step goes.

Streaming a Chrome trace (``trace_reader``), keeping a few numbers per event (``trace_events``), which step and which
optimizer update an event belongs to (``trace_steps``), busy time and kernel categories (``trace_analysis``,
``categories``), the per-module breakdown (``module_breakdown``, ``module_parts``) and the verdict rules
(``verdict``).

Plain Python: imports nothing that imports torch, so ``scripts/analyze_trace.py`` runs on a machine without it. May
import only the standard library and its own modules.
"""
