# Rank-deficient fixed parts (issue 17, item 4): the columns lme4 keeps and their names -- empty
# cells, unused levels, aliased numeric columns, interactions without their margins (R codes
# every level of such factors and drops the aliased columns last to first) and R's order of the
# variables inside interactions (first appearance in the formula).
# Run from the repository root: Rscript tests/reference/rstyle/rank_deficiency.R
suppressMessages({library(lme4); library(jsonlite)})
set.seed(11); n <- 120
d <- data.frame(a = factor(sample(c("p", "q", "r"), n, TRUE)), b = factor(sample(c("u", "v"), n, TRUE)),
                x = rnorm(n), g = factor(rep(1:12, 10)),
                lake = factor(sample(c("L1", "L2", "L3"), n, TRUE), levels = c("L1", "L2", "L3", "L4")),
                time = sample(1:4, n, TRUE))
d$tf <- factor(d$time)
d$lake[d$lake == "L3"] <- "L2"  # L3 now unused too
d$time[d$lake == "L2"] <- 2       # time constant within L2: time:lakeL2 aliased with lakeL2
d$x2 <- 2 * d$x + 1               # aliased with intercept + x
d$y <- rnorm(n) + as.numeric(d$a) + rnorm(12)[d$g]
d$count <- rpois(n, 3)
# empty cell in a:b
d$b[d$a == "r"] <- "u"
write.csv(d, "tests/reference/rstyle/rank_deficiency.csv", row.names = FALSE)
fs <- c("y ~ a:b + (1 | g)", "y ~ a + a:b + (1 | g)", "y ~ a * b + (1 | g)", "y ~ x:a + (1 | g)",
        "y ~ b + a:x + (1 | g)", "y ~ 0 + a:b + (1 | g)", "count ~ time * lake + (1 | g)", "y ~ x + x2 + a + (1 | g)",
        "y ~ x2 + x + a + (1 | g)", "y ~ tf * lake + (1 | g)", "y ~ a:b:x + (1 | g)", "y ~ b + a:b + (1 | g)", "count ~ lake * time + (1 | g)", "count ~ lake + time + lake:time + (1 | g)", "y ~ x + a:x + b:x + (1 | g)", "y ~ a:x + x + (1 | g)")
out <- lapply(fs, function(f) {
  m <- suppressMessages(suppressWarnings(if (grepl("^count", f)) glmer(as.formula(f), d, family = poisson) else lmer(as.formula(f), d, REML = FALSE)))
  list(formula = f, names = names(fixef(m)), fixef = unname(fixef(m)), logLik = as.numeric(logLik(m)),
       mm = colnames(model.matrix(lm(nobars(as.formula(f)), d))))
})
writeLines(toJSON(out, digits = NA, auto_unbox = TRUE), "tests/reference/rstyle/rank_deficiency.json")
