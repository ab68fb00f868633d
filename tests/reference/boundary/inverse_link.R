# Gaussian data with an inverse link, simulated as in lme4's tests/glmmExt.R (set.seed(101); 26
# blocks x 100 rows; eta = 4 + 3 x + N(0, 1) block effect; y ~ N(1 / eta, 0.01)), and the glmmTMB
# 1.1.5 fit of y ~ x + (1 | block) (issue 17, item 2: glmmdiag once reported beta ~ -8.6e15 as
# converged). Run from the repository root: Rscript tests/reference/boundary/inverse_link.R
suppressMessages({library(glmmTMB); library(jsonlite)})
set.seed(101)
d <- expand.grid(block = LETTERS[1:26], rep = 1:100, KEEP.OUT.ATTRS = FALSE)
d$x <- runif(nrow(d))
reff <- rnorm(length(levels(d$block)), sd = 1)
eta <- 4 + 3 * d$x + reff[d$block]
d$y <- rnorm(nrow(d), 1 / eta, sd = 0.01)
write.csv(d[, c("block", "x", "y")], "tests/reference/boundary/inverse_link.csv", row.names = FALSE)
m <- glmmTMB(y ~ x + (1 | block), family = gaussian(link = "inverse"), data = d)
out <- list(call = 'glmmTMB(y ~ x + (1 | block), family = gaussian(link = "inverse"), data = d)',
            logLik = as.numeric(logLik(m)), fixef = unname(fixef(m)$cond),
            sd = unname(attr(VarCorr(m)$cond$block, "stddev")), sigma = sigma(m),
            glmmTMB = as.character(packageVersion("glmmTMB")))
writeLines(toJSON(out, digits = NA, auto_unbox = TRUE, pretty = TRUE), "tests/reference/boundary/inverse_link.json")
cat(out$logLik, out$fixef, "\n")
