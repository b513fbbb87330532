"""The metrics: pure functions on DataFrames (no SQL, no UI). See docs/architecture.md.

- :func:`agreement` (agreement.py): per RM, ties and unscored pairs apart.
- :func:`regimes`, :func:`regime`, :func:`gamma` (regimes.py).
- :func:`imprint` (imprint.py): OLS of reward on features, cluster-robust by pair.
- :func:`reward_shift_theta` (shift.py): signed angle between (pre r_c, r_r) and (post r_c, r_r).
- :func:`misalignment_drivers` (drivers.py): LPM and logit of post-D misalignment.
- :func:`confusing` (confusing.py): same labels, near-identical, labeler sides with the RM.

The lowest stage: pure statistics; imports only the shared top modules (errors), never the store.
"""

from analysis.metrics.agreement import add_outcomes, agreement, compare
from analysis.metrics.confusing import confusing, near_identical, response_similarity
from analysis.metrics.drivers import misalignment_drivers, side_features
from analysis.metrics.imprint import ImprintResult, imprint
from analysis.metrics.linreg import adjust_p, check_design, ols, regress, vif
from analysis.metrics.significance import is_significant, significance_marker
from analysis.metrics.regimes import DECIDED, GAMMAS, REGIMES, gamma, misalignment, regime, regimes, target_score
from analysis.metrics.shift import reward_shift_theta, theta_regression, theta_summary

__all__ = [
    "add_outcomes", "agreement", "compare", "confusing", "near_identical", "response_similarity",
    "misalignment_drivers", "side_features", "ImprintResult", "imprint", "adjust_p", "check_design",
    "ols", "regress", "significance_marker", "is_significant", "vif", "DECIDED", "GAMMAS", "REGIMES", "gamma",
    "misalignment", "regime", "regimes", "target_score", "reward_shift_theta", "theta_regression",
    "theta_summary",
]
