"""Distillation algorithms only: losses (one function per method), feature and relation terms, the trainer, auto-tuning,
schemes and data-free synthesis. The stages that use them are edgedistill.pipeline."""
