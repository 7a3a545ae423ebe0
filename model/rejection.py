"""The "not a digit" decision: an 11th output, and the threshold it must reach.

A network that only knows ten classes answers a dot or a letter with ">99.9%
sure" of some digit: softmax must put its mass somewhere. Trained with an
11th class of letters, symbols and doodles, its share of the softmax is the
belief that the drawing is no digit. Where to cut that share is a trade: the
threshold is set on writers the network never trained on (the calibration
institutions), so that a chosen small share of their real digits is refused,
and whatever share of non-digits that catches is what it catches.
"""
import numpy as np

NOT_A_DIGIT = 10
# Share of real digits we accept to call "not a digit" on the calibration
# writers, in every canvas variant (when the set names them): the product
# target is at most 1% on new writers. Measured on the calibration writers
# (21,900 drawings, 24 per pen digit): small digits are the worst variant, and
# holding them to 0.8% refuses 0.38% of all digits and still catches 90% of
# letters and doodles; holding them to 0.4% needs the 0.9 cap and catches 84%.
DIGIT_FLAG_RATE = 0.008
# Whatever the calibration says, the cut stays inside these bounds: below 0.05
# a few odd digits would decide it; above 0.9 nothing is ever refused.
THRESHOLD_BOUNDS = (0.05, 0.9)


def not_digit_share(logits):
    """Softmax share of the 11th output, float32 (N,), from (N, 11) logits."""
    z = np.asarray(logits, dtype=np.float32)
    z = z - z.max(axis=1, keepdims=True)
    e = np.exp(z)
    return e[:, NOT_A_DIGIT] / e.sum(axis=1)


def calibrate(scores, labels, digit_flag_rate=DIGIT_FLAG_RATE, groups=None):
    """Threshold on the not-a-digit share and what it does on the calibration set.

    `scores`: not-a-digit shares; `labels`: 0-9 for digits, 10 for non-digits.
    The threshold is the (1 - rate) quantile of the digits' scores, clipped to
    THRESHOLD_BOUNDS; a drawing is refused when its score reaches it. With
    `groups` (the canvas variant of each image) it is the highest of the
    groups' quantiles: the rate then holds for the worst way of drawing (a
    small digit is refused about twice as often as a default one), not only
    for the mix.
    """
    scores = np.asarray(scores, dtype=np.float64)
    labels = np.asarray(labels)
    is_digit = labels < NOT_A_DIGIT
    digits = scores[is_digit]
    others = scores[labels == NOT_A_DIGIT]
    if len(digits) == 0:
        raise ValueError("calibration needs real digits to measure how many would be refused")
    quantile = 1.0 - digit_flag_rate
    by_group = {}
    if groups is not None:
        groups = np.asarray(groups)[is_digit]
        by_group = {name: digits[groups == name] for name in sorted(set(groups.tolist()))}
    cut = max((np.quantile(d, quantile) for d in by_group.values()), default=np.quantile(digits, quantile))
    threshold = float(np.clip(cut, *THRESHOLD_BOUNDS))
    per_group = {name: float(np.mean(d >= threshold)) for name, d in by_group.items()}
    return {
        "class": NOT_A_DIGIT,
        "threshold": round(threshold, 6),
        "target_digit_flag_rate": digit_flag_rate,
        "calibration_digits": int(len(digits)),
        "calibration_non_digits": int(len(others)),
        "digits_flagged": float(np.mean(digits >= threshold)),
        "non_digits_flagged": float(np.mean(others >= threshold)) if len(others) else None,
        **({"digits_flagged_by_variant": per_group} if per_group else {}),
    }
