"""Distillation: losses (one function per method), the trainer, auto-tuning and the distill pipeline."""
