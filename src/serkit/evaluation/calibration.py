"""Temperature scaling of predicted probabilities (Guo et al. 2017), for ensembles of unlike members.

A member's probabilities p [N, C] become softmax(log p / T): T > 1 softens an overconfident member, T < 1
sharpens an underconfident one, and the argmax (each member's own decisions) never changes. An average of
probabilities weighs the more confident member more, whatever its accuracy: a logistic-regression probe and a
network trained with label smoothing differ in confidence scale, so `serkit ensemble --calibrate` fits one T per
member and fold on that fold's validation predictions (negative log-likelihood) before averaging. A refit
member (`train.refit`, `probe --refit`) predicts validation with its first fit, trained without the validation
speakers: its temperature is that model's, applied to the refit one.
"""

from __future__ import annotations

import math
import warnings

import numpy as np
from scipy.optimize import minimize_scalar
from scipy.special import log_softmax

from ..errors import DataError

T_RANGE = (0.05, 20.0)  # far beyond what a trained model needs; bounds keep a degenerate fit finite
# a class a member gave exactly 0 (a probe whose training split lacked it; underflow) must not become log(0)
_FLOOR = 1e-12


def scale(probabilities: np.ndarray, temperature: float) -> np.ndarray:
    """probabilities [N, C] (rows sum to 1) -> softmax(log p / T) [N, C] float64, rows summing to 1."""
    log_p = np.log(np.clip(np.asarray(probabilities, dtype=np.float64), _FLOOR, 1.0))
    return np.exp(log_softmax(log_p / temperature, axis=-1))


def fit_temperature(probabilities: np.ndarray, targets: np.ndarray, where: str = "") -> float:
    """The T in T_RANGE that minimises the mean negative log-likelihood of `targets` [N] (class indices) under
    scale(probabilities [N, C], T). DataError (naming `where`) when there is nothing to fit on."""
    probabilities = np.asarray(probabilities, dtype=np.float64)
    targets = np.asarray(targets)
    if probabilities.ndim != 2 or len(probabilities) == 0 or len(targets) != len(probabilities):
        raise DataError(f"{where}: no validation predictions to fit a temperature on "
                        f"({len(probabilities)} rows, {len(targets)} labels)")
    if not np.isfinite(probabilities).all():
        raise DataError(f"{where}: validation probabilities that are not finite (NaN or inf): the member's "
                        "predictions are damaged")
    log_p = np.log(np.clip(probabilities, _FLOOR, 1.0))
    rows = np.arange(len(targets))

    def nll(log_t: float) -> float:
        return float(-log_softmax(log_p / math.exp(log_t), axis=-1)[rows, targets].mean())

    fit = minimize_scalar(nll, bounds=(math.log(T_RANGE[0]), math.log(T_RANGE[1])), method="bounded",
                          options={"xatol": 1e-5})
    temperature = float(math.exp(fit.x))
    if temperature > 0.99 * T_RANGE[1]:
        # a member that is wrong with near certainty (e.g. a 0 for a class validation holds) is flattened to
        # near uniform: it then counts for almost nothing in the average, which its user should know
        warnings.warn(f"{where}: its temperature reached the bound {T_RANGE[1]:g}: the member is scaled to near "
                      "uniform and counts for almost nothing (a class it gives probability 0 on validation?)",
                      stacklevel=2)
    return temperature
