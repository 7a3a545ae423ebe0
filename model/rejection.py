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
# writers: the product target is at most 1% on new writers, the goal 0.5%;
# aiming at 0.4% leaves room for writers less like ours.
DIGIT_FLAG_RATE = 0.004
# Whatever the calibration says, the cut stays inside these bounds: below 0.05
# a few odd digits would decide it; above 0.9 nothing is ever refused.
THRESHOLD_BOUNDS = (0.05, 0.9)


def not_digit_share(logits):
    """Softmax share of the 11th output, float32 (N,), from (N, 11) logits."""
    z = np.asarray(logits, dtype=np.float32)
    z = z - z.max(axis=1, keepdims=True)
    e = np.exp(z)
    return e[:, NOT_A_DIGIT] / e.sum(axis=1)


def calibrate(scores, labels, digit_flag_rate=DIGIT_FLAG_RATE):
    """Threshold on the not-a-digit share and what it does on the calibration set.

    `scores`: not-a-digit shares; `labels`: 0-9 for digits, 10 for non-digits.
    The threshold is the (1 - rate) quantile of the digits' scores, clipped to
    THRESHOLD_BOUNDS; a drawing is refused when its score reaches it.
    """
    scores = np.asarray(scores, dtype=np.float64)
    labels = np.asarray(labels)
    digits = scores[labels < NOT_A_DIGIT]
    others = scores[labels == NOT_A_DIGIT]
    if len(digits) == 0:
        raise ValueError("calibration needs real digits to measure how many would be refused")
    threshold = float(np.clip(np.quantile(digits, 1.0 - digit_flag_rate), *THRESHOLD_BOUNDS))
    return {
        "class": NOT_A_DIGIT,
        "threshold": round(threshold, 6),
        "target_digit_flag_rate": digit_flag_rate,
        "calibration_digits": int(len(digits)),
        "calibration_non_digits": int(len(others)),
        "digits_flagged": float(np.mean(digits >= threshold)),
        "non_digits_flagged": float(np.mean(others >= threshold)) if len(others) else None,
    }
