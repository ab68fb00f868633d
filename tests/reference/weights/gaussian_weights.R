# Gaussian weights: lmer's (precision, variance sigma^2 / w) and glmmTMB's (each row's log density
# times w) on the same data (issue 17, item 5).
# Run from the repository root: Rscript tests/reference/weights/gaussian_weights.R
suppressMessages({library(lme4); library(glmmTMB); library(jsonlite)})
ss <- read.csv("tests/data/sleepstudy.csv"); ss$Subject <- factor(ss$Subject)
set.seed(7); ss$w <- round(runif(nrow(ss), 0.3, 3), 3)
write.csv(ss[, "w", drop = FALSE], "tests/reference/weights/sleepstudy_weights.csv", row.names = FALSE)
f <- Reaction ~ Days + (Days | Subject)
one <- function(m, call, fe, se) {
  list(call = call, logLik = as.numeric(logLik(m)), df = attr(logLik(m), "df"), fixef = unname(fe),
       se = unname(se), sigma = sigma(m))
}
m1 <- lmer(f, ss, weights = w, REML = FALSE)
m2 <- glmmTMB(f, ss, weights = w)
m3 <- lmer(f, ss, weights = w, REML = TRUE)
sd_lmer <- function(m) unname(attr(VarCorr(m)$Subject, "stddev"))
out <- list(
  lmer_ML = c(one(m1, "lmer(Reaction ~ Days + (Days | Subject), weights = w, REML = FALSE)", fixef(m1),
                  sqrt(diag(as.matrix(vcov(m1))))), list(sd = sd_lmer(m1))),
  lmer_REML = c(one(m3, "lmer(Reaction ~ Days + (Days | Subject), weights = w, REML = TRUE)", fixef(m3),
                    sqrt(diag(as.matrix(vcov(m3))))), list(sd = sd_lmer(m3))),
  glmmTMB = c(one(m2, "glmmTMB(Reaction ~ Days + (Days | Subject), weights = w)", fixef(m2)$cond,
                  sqrt(diag(vcov(m2)$cond))), list(sd = unname(attr(VarCorr(m2)$cond$Subject, "stddev")))),
  lme4 = as.character(packageVersion("lme4")), glmmTMB_version = as.character(packageVersion("glmmTMB")))
writeLines(toJSON(out, digits = NA, auto_unbox = TRUE, pretty = TRUE), "tests/reference/weights/gaussian_weights.json")
