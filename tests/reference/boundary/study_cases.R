# Fits of benchmarks/boundary_study.py (seed 1) that stopped short of a better optimum before the
# mirrored, floored and interior boundary restarts (engine._off_boundary): lme4's and glmmTMB's
# logLik for each (issue 17, boundary study). Run from the repository root:
# Rscript tests/reference/boundary/study_cases.R
suppressMessages({library(lme4); library(glmmTMB); library(jsonlite)})
d <- read.csv("tests/reference/boundary/study_cases.csv")
out <- list()
for (k in unique(d$case)) {
  dk <- d[d$case == k, ]; dk$g <- factor(dk$g); fam <- dk$family[1]
  if (fam == "gaussian") {
    m1 <- lmer(y ~ x + (x | g), dk, REML = FALSE)
    m2 <- glmmTMB(y ~ x + (x | g), dk)
  } else if (fam == "poisson") {
    m1 <- glmer(y ~ x + (x | g), dk, family = poisson)
    m2 <- glmmTMB(y ~ x + (x | g), dk, family = poisson)
  } else {
    m1 <- glmer(cbind(s, f) ~ x + (x | g), dk, family = binomial)
    m2 <- glmmTMB(cbind(s, f) ~ x + (x | g), dk, family = binomial)
  }
  out[[as.character(k)]] <- list(case = k, family = fam, logLik_lme4 = as.numeric(logLik(m1)),
                                 logLik_glmmTMB = as.numeric(logLik(m2)))
}
writeLines(toJSON(out, digits = NA, auto_unbox = TRUE, pretty = TRUE), "tests/reference/boundary/study_cases.json")
