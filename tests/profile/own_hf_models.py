"""A Hugging Face model for ``--module tests/profile/own_hf_models.py:SlowLayerLlama``: the docs' example
(examples/hf_llama.py) with one decoder layer that sleeps a known time at the start of its forward."""

import time


def _sleep_hook(seconds: float):
    return lambda module, args: time.sleep(seconds)


def slow_llama_class():
    """The docs' Hugging Face example (examples/hf_llama.py), one decoder layer of which sleeps ``sleep_ms`` at the
    start of its forward: a planted, known slowdown inside the train step's forward."""
    import importlib.util
    from pathlib import Path

    path = Path(__file__).resolve().parents[2] / "examples" / "hf_llama.py"
    spec = importlib.util.spec_from_file_location("hf_llama_example", path)
    example = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(example)

    class SlowLayerLlama(example.HFLlama):
        def __init__(self, sleep_ms: float = 0.0, **kwargs) -> None:
            super().__init__(**kwargs)
            if sleep_ms:
                self.model.model.layers[1].register_forward_pre_hook(_sleep_hook(sleep_ms / 1000.0))

    return SlowLayerLlama


SlowLayerLlama = slow_llama_class()
