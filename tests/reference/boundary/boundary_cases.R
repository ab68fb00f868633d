# lme4 1.1.31 / glmmTMB 1.1.5 fits that glmmdiag once stopped on the boundary for (issue 17, item 1).
# Run from the repository root: Rscript tests/reference/boundary/boundary_cases.R
suppressMessages({library(lme4); library(glmmTMB); library(jsonlite)})
ss <- read.csv("tests/data/sleepstudy.csv")
ss$Subject <- factor(ss$Subject)
ss$R <- round(ss$Reaction)
out <- list(versions = list(R = R.version.string, lme4 = as.character(packageVersion("lme4")),
                            glmmTMB = as.character(packageVersion("glmmTMB"))))
m1 <- glmer(R ~ Days + (1 + Days | Subject), family = poisson, data = ss)
m2 <- glmmTMB(R ~ Days + (1 + Days | Subject), family = poisson, data = ss)
vc <- as.data.frame(VarCorr(m1))
out$sleepstudy_poisson_slope <- list(
  call = "glmer(round(Reaction) ~ Days + (1 + Days | Subject), family = poisson, data = sleepstudy)",
  logLik_lme4 = as.numeric(logLik(m1)), logLik_glmmTMB = as.numeric(logLik(m2)),
  fixef = unname(fixef(m1)), sdcor = vc$sdcor, theta = unname(getME(m1, "theta")))
# gaussian ML with two scalar terms, simulated like lme4's randu test (SDs near 0; numpy seed 10:
# y, x, z ~ U(0, 1) plus 0.05 N(0, 1) effects of A (on x) and B): lmer keeps SD(x | A) = 0.169
d <- read.csv("tests/reference/boundary/lmm_two_scalar_terms.csv")
d$A <- factor(d$A); d$B <- factor(d$B)
m3 <- lmer(y ~ x + z + (0 + x | A) + (1 | B), data = d, REML = FALSE)
out$lmm_two_scalar_terms <- list(call = "lmer(y ~ x + z + (0 + x | A) + (1 | B), data = d, REML = FALSE)",
  logLik_lme4 = as.numeric(logLik(m3)), fixef = unname(fixef(m3)), theta = unname(getME(m3, "theta")))
writeLines(toJSON(out, digits = NA, auto_unbox = TRUE, pretty = TRUE), "tests/reference/boundary/boundary_cases.json")
cat("done\n")
