"""The test suite: CPU by default (GPU tests skip without CUDA), one folder per package of gpt2_lightning."""
