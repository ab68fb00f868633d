# Binomial data with many trials per row and a random slope with as many coefficients as rows
# (34 plots x 2 sizes = 68 rows, (size | plot)): lme4 fits it (glmerControl ignores
# check.nobs.vs.nRE); glmmdiag once refused it as "not identifiable" (issue 17, item 3).
# Simulated here (set.seed(17)); run from the repository root:
#   Rscript tests/reference/boundary/trials_per_row.R
suppressMessages({library(lme4); library(jsonlite)})
set.seed(17)
d <- expand.grid(size = c("small", "large"), plot = sprintf("p%02d", 1:34), KEEP.OUT.ATTRS = FALSE)
d$size <- factor(d$size, levels = c("small", "large"))
d$plot <- factor(d$plot)
b0 <- rnorm(34, 0, 0.6); b1 <- 0.5 * b0 + rnorm(34, 0, 0.4)
eta <- -0.3 + 0.8 * (d$size == "large") + b0[d$plot] + b1[d$plot] * (d$size == "large")
d$trials <- sample(20:60, nrow(d), replace = TRUE)
d$dead <- rbinom(nrow(d), d$trials, plogis(eta))
d$alive <- d$trials - d$dead
write.csv(d[, c("plot", "size", "dead", "alive")], "tests/reference/boundary/trials_per_row.csv", row.names = FALSE)
m <- glmer(cbind(dead, alive) ~ size + (size | plot), family = binomial, data = d)
vc <- as.data.frame(VarCorr(m))
out <- list(call = "glmer(cbind(dead, alive) ~ size + (size | plot), family = binomial, data = d)",
            logLik = as.numeric(logLik(m)), fixef = unname(fixef(m)), sdcor = vc$sdcor,
            theta = unname(getME(m, "theta")), lme4 = as.character(packageVersion("lme4")))
writeLines(toJSON(out, digits = NA, auto_unbox = TRUE, pretty = TRUE), "tests/reference/boundary/trials_per_row.json")
cat(out$logLik, out$fixef, out$theta, "\n")
