"""Bad input gets a ValueError/KeyError whose message names the problem (issue 2, "Done means").

One test per case, on small synthetic data (numpy default_rng).  Each message is checked against
two loose patterns (both must match, case-insensitive): the offending column/argument value, and a
keyword for the kind of problem.  The patterns are collected in PATTERNS so they can be listed.
"""
from __future__ import annotations

import re
import warnings

import numpy as np
import pandas as pd
import pytest

ERRORS = (ValueError, KeyError)

# kind of problem -> regex that the message must contain (case-insensitive)
PATTERNS = {
    "missing_column": r"column|not found|missing|unknown|not in|no such|undefined",
    "nan_response": r"nan|missing|non-finite|no (complete |usable )?(rows|observations)|empty|all",
    "negative": r"negative",
    "integer": r"integer",
    "bernoulli_support": r"support|\{0, ?1\}|0/1|0 or 1|0 and 1|binary|\[0, ?1\]",
    "successes_gt_trials": r"negative|exceed|trials|support|greater|larger|more than",
    "proportion_support": r"\[0, ?1\]|between 0 and 1|support|proportion|outside|exceed",
    "one_level": r"level",
    "levels_eq_rows": r"level|rows|observations",
    "unknown_family": r"family",
    "unknown_link": r"link",
    "weights": r"weight",
    "non_finite": r"finite|nan|inf",
    "n_agq": r"n_?agq|quadrature|gauss",
    "n_agq_shape": r"single|one|scalar|intercept|term|slope",
}


def _glmm():
    import glmmdiag

    return glmmdiag.glmm


def assert_error_naming(call, *patterns):
    """`call()` raises ValueError/KeyError and its message matches every regex in `patterns`."""
    with pytest.raises(ERRORS) as excinfo:
        call()
    message = str(excinfo.value)
    for pat in patterns:
        assert re.search(pat, message, flags=re.IGNORECASE), f"message {message!r} does not match {pat!r}"


def make_data(n: int = 120, n_groups: int = 6, seed: int = 1) -> pd.DataFrame:
    """Valid data for every family: gaussian `yresp`, counts `count`, 0/1 `y01`, `succ` of `trials`.

    `g` and `h` are crossed grouping factors with real effects (and a random slope of x within g), so
    the valid variants below fit without singular-fit warnings (checked for seed 1).
    """
    rng = np.random.default_rng(seed)
    g = np.repeat(np.arange(n_groups), n // n_groups)
    h = np.tile(np.arange(n_groups), n // n_groups)
    x = rng.normal(size=n)
    u = rng.normal(scale=0.6, size=n_groups)  # intercepts by g
    v = rng.normal(scale=0.4, size=n_groups)  # slopes of x by g
    w = rng.normal(scale=0.6, size=n_groups)  # intercepts by h
    eta = 0.2 + 0.4 * x + u[g] + w[h]
    trials = rng.integers(5, 15, size=n)
    return pd.DataFrame(
        {
            "yresp": 1.0 + 0.5 * x + u[g] + v[g] * x + rng.normal(scale=0.3, size=n),
            "count": rng.poisson(np.exp(eta)),
            "y01": (rng.random(n) < 1 / (1 + np.exp(-eta))).astype(int),
            "succ": rng.binomial(trials, 1 / (1 + np.exp(-eta))),
            "trials": trials,
            "x": x,
            "g": pd.Categorical([f"g{i}" for i in g]),
            "h": pd.Categorical([f"h{i}" for i in h]),
        }
    )


# ---------------------------------------------------------------------------------------------- columns


def test_missing_fixed_effect_column():
    df = make_data()
    assert_error_naming(
        lambda: _glmm()("yresp ~ x + not_a_column + (1 | g)", df), r"not_a_column", PATTERNS["missing_column"]
    )


def test_missing_grouping_column():
    df = make_data()
    assert_error_naming(
        lambda: _glmm()("yresp ~ x + (1 | no_such_group)", df), r"no_such_group", PATTERNS["missing_column"]
    )


def test_missing_response_column():
    df = make_data()
    assert_error_naming(
        lambda: _glmm()("no_such_response ~ x + (1 | g)", df), r"no_such_response", PATTERNS["missing_column"]
    )


def test_nan_only_response():
    df = make_data()
    df["allnan"] = np.nan
    assert_error_naming(lambda: _glmm()("allnan ~ x + (1 | g)", df), r"allnan", PATTERNS["nan_response"])


# ---------------------------------------------------------------------------------------------- support


def test_poisson_negative_counts():
    df = make_data()
    df.loc[3, "count"] = -2
    assert_error_naming(
        lambda: _glmm()("count ~ x + (1 | g)", df, family="poisson"), r"count", PATTERNS["negative"]
    )


def test_poisson_non_integer_counts():
    df = make_data()
    df["count"] = df["count"].astype(float)
    df.loc[5, "count"] = 2.5
    assert_error_naming(
        lambda: _glmm()("count ~ x + (1 | g)", df, family="poisson"), r"count", PATTERNS["integer"]
    )


def test_bernoulli_response_outside_0_1():
    df = make_data()
    df.loc[7, "y01"] = 2
    assert_error_naming(
        lambda: _glmm()("y01 ~ x + (1 | g)", df, family="binomial"), r"y01", PATTERNS["bernoulli_support"]
    )


def test_cbind_successes_greater_than_trials():
    df = make_data()
    df.loc[2, "succ"] = df.loc[2, "trials"] + 3  # failures = trials - succ < 0
    assert_error_naming(
        lambda: _glmm()("cbind(succ, trials - succ) ~ x + (1 | g)", df, family="binomial"),
        r"succ",
        PATTERNS["successes_gt_trials"],
    )


def test_proportion_with_weights_outside_0_1():
    df = make_data()
    df["prop"] = df["succ"] / df["trials"]
    df.loc[4, "prop"] = 1.2
    assert_error_naming(
        lambda: _glmm()("prop ~ x + (1 | g)", df, family="binomial", weights=df["trials"].to_numpy()),
        r"prop",
        PATTERNS["proportion_support"],
    )


# ---------------------------------------------------------------------------------------------- groups


def test_grouping_factor_with_one_level():
    df = make_data()
    df["onelevel"] = pd.Categorical(["only"] * len(df))
    assert_error_naming(lambda: _glmm()("yresp ~ x + (1 | onelevel)", df), r"onelevel", PATTERNS["one_level"])


def test_random_slope_with_as_many_levels_as_rows():
    df = make_data()
    df["uid"] = pd.Categorical([f"r{i}" for i in range(len(df))])
    assert_error_naming(lambda: _glmm()("yresp ~ x + (x | uid)", df), r"uid", PATTERNS["levels_eq_rows"])


# ---------------------------------------------------------------------------------------------- family / link


def test_unknown_family():
    df = make_data()
    assert_error_naming(
        lambda: _glmm()("yresp ~ x + (1 | g)", df, family="bogusfamily"), r"bogusfamily", PATTERNS["unknown_family"]
    )


def test_unknown_link():
    df = make_data()
    assert_error_naming(
        lambda: _glmm()("y01 ~ x + (1 | g)", df, family="binomial", link="boguslink"),
        r"boguslink",
        PATTERNS["unknown_link"],
    )


def test_link_not_available_for_family():
    # the issue lists log, sqrt, identity for Poisson; logit is not one of them
    df = make_data()
    assert_error_naming(
        lambda: _glmm()("count ~ x + (1 | g)", df, family="poisson", link="logit"),
        r"logit",
        PATTERNS["unknown_link"],
    )


# ---------------------------------------------------------------------------------------------- weights


@pytest.mark.parametrize("bad", [np.nan, np.inf], ids=["nan", "inf"])
def test_non_finite_weights(bad):
    df = make_data()
    w = np.ones(len(df))
    w[9] = bad
    assert_error_naming(
        lambda: _glmm()("yresp ~ x + (1 | g)", df, weights=w), PATTERNS["weights"], PATTERNS["non_finite"]
    )


# ---------------------------------------------------------------------------------------------- n_agq


def test_n_agq_with_two_random_effect_terms():
    df = make_data()
    assert_error_naming(
        lambda: _glmm()("y01 ~ x + (1 | g) + (1 | h)", df, family="binomial", n_agq=5),
        PATTERNS["n_agq"],
        PATTERNS["n_agq_shape"],
    )


def test_n_agq_with_random_slope():
    df = make_data()
    assert_error_naming(
        lambda: _glmm()("y01 ~ x + (x | g)", df, family="binomial", n_agq=5),
        PATTERNS["n_agq"],
        PATTERNS["n_agq_shape"],
    )


# ---------------------------------------------------------------------------------------------- the data


def test_synthetic_data_is_valid():
    """The base data breaks none of the rules above (so each test isolates one problem)."""
    df = make_data()
    assert df["count"].min() >= 0 and set(df["y01"].unique()) <= {0, 1}
    assert (df["succ"] <= df["trials"]).all()
    assert df["g"].nunique() == 6 and df["h"].nunique() == 6
    assert pd.crosstab(df["g"], df["h"]).to_numpy().min() > 0  # crossed, not nested


@pytest.mark.parametrize(
    "formula, family, use_weights",
    [
        ("yresp ~ x + (1 | g)", "gaussian", False),
        ("yresp ~ x + (x | g)", "gaussian", False),
        ("count ~ x + (1 | g)", "poisson", False),
        ("y01 ~ x + (1 | g) + (1 | h)", "binomial", False),
        ("cbind(succ, trials - succ) ~ x + (1 | g)", "binomial", False),
        ("prop ~ x + (1 | g)", "binomial", True),
    ],
)
def test_valid_variants_fit(formula, family, use_weights):
    """Without the defect, the same data and formulas fit: the errors above come from the defect."""
    df = make_data()
    df["prop"] = df["succ"] / df["trials"]
    kw = {"weights": df["trials"].to_numpy(float)} if use_weights else {}
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # not even a singular-fit warning: the base data are clean
        fit = _glmm()(formula, df, family=family, **kw)
    assert fit.nobs == len(df)
    assert np.all(np.isfinite(fit.fixef.to_numpy(float)))


# ---------------------------------------------------------------------------------------------- dispersion families
# (issue 3) support of the response for beta, Gamma and the negative binomials; t's df


def _with_dispersion_responses(df: pd.DataFrame) -> pd.DataFrame:
    rng = np.random.default_rng(7)
    b = np.array([-1.2, -0.5, 0.0, 0.4, 0.8, 1.3])[df["g"].cat.codes.to_numpy()]  # clear group effects
    eta = 0.2 + 0.4 * df["x"].to_numpy() + b
    mu = 1 / (1 + np.exp(-eta))
    df = df.copy()
    df["prop01"] = rng.beta(mu * 15, (1 - mu) * 15)
    df["pos"] = rng.gamma(3.0, np.exp(eta) / 3.0)
    return df


def test_beta_response_outside_open_interval():
    df = _with_dispersion_responses(make_data())
    df.loc[[3, 8], "prop01"] = 0.0
    df.loc[11, "prop01"] = 1.0
    n = len(df)
    call = lambda: _glmm()("prop01 ~ x + (1 | g)", df, family="beta")  # noqa: E731
    # the count of offending rows, the column, and the Smithson-Verkuilen squeeze
    assert_error_naming(call, r"prop01", rf"\b3 of {n} rows", r"\(0, ?1\)",
                        r"\(y\s*\*?\s*\(n\s*-\s*1\)\s*\+\s*0\.5\)\s*/\s*n")


def test_beta_response_below_zero_only():
    df = _with_dispersion_responses(make_data())
    df.loc[5, "prop01"] = -0.1
    assert_error_naming(lambda: _glmm()("prop01 ~ x + (1 | g)", df, family="beta"),
                        r"prop01", r"\b1 of \d+ rows", r"0\.5\)\s*/\s*n")


@pytest.mark.parametrize("bad", [0.0, -1.5], ids=["zero", "negative"])
def test_gamma_response_not_positive(bad):
    df = _with_dispersion_responses(make_data())
    df.loc[[2, 6], "pos"] = bad
    assert_error_naming(lambda: _glmm()("pos ~ x + (1 | g)", df, family="gamma", link="log"),
                        r"pos", r"\b2 of \d+ rows", r"y <= 0|support|positive")


@pytest.mark.parametrize("family", ["nbinom2", "nbinom1"])
def test_negative_binomial_negative_counts(family):
    df = make_data()
    df.loc[3, "count"] = -2
    assert_error_naming(lambda: _glmm()("count ~ x + (1 | g)", df, family=family), r"count", PATTERNS["negative"])


@pytest.mark.parametrize("family", ["nbinom2", "nbinom1"])
def test_negative_binomial_non_integer_counts(family):
    df = make_data()
    df["count"] = df["count"].astype(float)
    df.loc[5, "count"] = 2.5
    assert_error_naming(lambda: _glmm()("count ~ x + (1 | g)", df, family=family), r"count", PATTERNS["integer"])


@pytest.mark.parametrize("df_value", [0.0, -3.0, np.inf, np.nan], ids=["zero", "negative", "inf", "nan"])
def test_t_family_invalid_df(df_value):
    data = make_data()
    assert_error_naming(lambda: _glmm()("yresp ~ x + (1 | g)", data, family="t", t_df=df_value),
                        r"\bdf\b|degrees of freedom", r"> 0|positive|finite")


def test_df_for_a_family_without_df():
    assert_error_naming(lambda: _glmm()("count ~ x + (1 | g)", make_data(), family="nbinom2", t_df=4.0),
                        r"\bt_df\b", r"\bt\b family")


def test_link_outside_the_mean_space_of_beta():
    df = _with_dispersion_responses(make_data())
    assert_error_naming(lambda: _glmm()("prop01 ~ x + (1 | g)", df, family="beta", link="log"),
                        r"log", PATTERNS["unknown_link"])


@pytest.mark.parametrize(
    "formula, family, kw",
    [
        ("prop01 ~ x + (1 | g)", "beta", {}),
        ("pos ~ x + (1 | g)", "gamma", {"link": "log"}),
        ("count ~ x + (1 | g)", "nbinom2", {}),
        ("count ~ x + (1 | g)", "nbinom1", {}),
        ("yresp ~ x + (1 | g)", "t", {"t_df": 5.0}),
    ],
)
def test_valid_dispersion_variants_fit(formula, family, kw):
    """Without the defect the same data fit: the errors above come from the defect."""
    df = _with_dispersion_responses(make_data())
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # not even a singular-fit or numerical warning
        fit = _glmm()(formula, df, family=family, **kw)
    assert fit.nobs == len(df)
    assert np.all(np.isfinite(fit.fixef.to_numpy(float)))
    assert fit.dispersion is not None and np.isfinite(fit.dispersion)


def test_scale_of_a_constant_column_is_a_clear_error_not_a_numpy_warning():
    import warnings

    from glmmdiag.errors import GlmmdiagError

    d = pd.DataFrame({"y": [1.0, 2, 3, 4, 5, 6], "x": [1.0] * 6, "g": list("aabbcc")})
    with warnings.catch_warnings():
        warnings.simplefilter("error", RuntimeWarning)
        for f in ("y ~ scale(x) + (1|g)", "y ~ 0 + scale(x) + (1|g)"):
            with pytest.raises(GlmmdiagError, match="scale"):
                _glmm()(f, d)
