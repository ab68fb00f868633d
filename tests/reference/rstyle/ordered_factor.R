# An ordered factor gets R's polynomial contrasts by default (issue 17, item 5).
# Run from the repository root: Rscript tests/reference/rstyle/ordered_factor.R
suppressMessages({library(lme4); library(jsonlite)})
set.seed(5)
d <- data.frame(dose = factor(sample(c("low", "mid", "high", "max"), 80, TRUE),
                              levels = c("low", "mid", "high", "max"), ordered = TRUE),
                g = factor(rep(1:8, 10)), x = rnorm(80))
d$y <- rnorm(80) + as.numeric(d$dose) * 0.3
write.csv(d, "tests/reference/rstyle/ordered_factor.csv", row.names = FALSE)
m <- lmer(y ~ dose * x + (1 | g), data = d, REML = FALSE)
out <- list(call = "lmer(y ~ dose * x + (1 | g), data = d, REML = FALSE)", logLik = as.numeric(logLik(m)),
            names = names(fixef(m)), fixef = unname(fixef(m)), lme4 = as.character(packageVersion("lme4")))
writeLines(toJSON(out, digits = NA, auto_unbox = TRUE, pretty = TRUE), "tests/reference/rstyle/ordered_factor.json")
