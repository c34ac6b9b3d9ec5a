"""Which weights a training run keeps: the last evaluation's, unless an earlier one beat them on validation beyond
the split's noise (`keep_last_epoch`; used by the trainer and the mutual-learning loop)."""

from __future__ import annotations

MIN_LEAD_SAMPLES = 6  # the fewest discordant samples McNemar's exact test can call significant: 2 · 0.5^6 = 0.031


def keep_last_epoch(best_val_acc: float, last_val_acc: float, n_val: int) -> bool:
    """Whether the final weights are kept instead of the best epoch's: when the best epoch's validation lead over the
    last epoch is within the noise of the validation split. The lead must clear two bars: best above the upper end
    of the last epoch's Wilson 95 % interval (edgedistill.stats), and at least MIN_LEAD_SAMPLES validation samples,
    because the two epochs are scored on the same samples and a lead of k samples means at least k discordant pairs,
    which McNemar's exact test cannot call significant at 5 % below k = 6 (p = 2 · 0.5^k). The second bar matters at
    the top of the scale, where Wilson's interval is short: on a 40-sample split 40/40 is above the interval of
    39/40, and on MNIST-1D with 400 labels (issue 20) a 500-epoch run kept epoch 92 for that one sample and lost
    about 6 test points. On thousands of samples an earlier epoch that is clearly better is still kept."""
    from edgedistill.stats import wilson_from_percent

    if n_val <= 0 or last_val_acc >= best_val_acc:
        return True
    lead_samples = (best_val_acc - last_val_acc) / 100.0 * n_val
    if lead_samples < MIN_LEAD_SAMPLES - 1e-6:
        return True
    return best_val_acc <= wilson_from_percent(last_val_acc, n_val).high
