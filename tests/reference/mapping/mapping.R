# glmmTMB's start= and map=: fixed and shared parameters (issue 17, item 5).
# Run from the repository root: Rscript tests/reference/mapping/mapping.R
suppressMessages({library(glmmTMB); library(jsonlite)})
ss <- read.csv("tests/data/sleepstudy.csv"); ss$Subject <- factor(ss$Subject)
set.seed(3); ss$z <- rnorm(nrow(ss)); ss$v <- rnorm(nrow(ss))
write.csv(ss[, c("z", "v")], "tests/reference/mapping/sleepstudy_extra.csv", row.names = FALSE)
cb <- read.csv("tests/data/cbpp.csv"); cb$herd <- factor(cb$herd); cb$period <- factor(cb$period)
out <- function(m, data_name, formula, family, start, map, py_start, py_map) {
  pl <- m$obj$env$parList(m$fit$par)
  list(data = data_name, formula = formula, family = family, start = start, map = map,
       py_start = py_start, py_map = py_map,
       logLik = as.numeric(logLik(m)), df = attr(logLik(m), "df"), AIC = AIC(m),
       fixef = unname(fixef(m)$cond), names = names(fixef(m)$cond),
       se = unname(sqrt(diag(vcov(m)$cond))), theta = pl$theta, betad = pl$betad, psi = pl$psi,
       sigma = sigma(m), converged = m$fit$convergence == 0,
       ranef_group = names(ranef(m)$cond)[1], ranef = unname(as.matrix(ranef(m)$cond[[1]])[1:5, , drop = FALSE]))
}
cases <- list()
m <- glmmTMB(Reaction ~ Days + (Days | Subject), ss, start = list(betad = 2 * log(25)), map = list(betad = factor(NA)))
cases$fixed_sigma <- out(m, "sleepstudy", "Reaction ~ Days + (Days | Subject)", "gaussian",
  "list(betad = 2 * log(25))", "list(betad = factor(NA))", list(betad = list(2 * log(25))), list(betad = list(NULL)))
m <- glmmTMB(Reaction ~ Days + (1 | Subject) + (0 + Days | Subject), ss, map = list(theta = factor(c(1, 1))))
cases$shared_sd <- out(m, "sleepstudy", "Reaction ~ Days + (1 | Subject) + (0 + Days | Subject)", "gaussian",
  "", "list(theta = factor(c(1, 1)))", NULL, list(theta = list(0, 0)))
m <- glmmTMB(Reaction ~ Days + (Days | Subject), ss, start = list(theta = c(3, 1.5, 0)), map = list(theta = factor(c(1, 2, NA))))
cases$fixed_corr <- out(m, "sleepstudy", "Reaction ~ Days + (Days | Subject)", "gaussian",
  "list(theta = c(3, 1.5, 0))", "list(theta = factor(c(1, 2, NA)))", list(theta = c(3, 1.5, 0)), list(theta = list(0, 1, NULL)))
m <- glmmTMB(Reaction ~ Days + (1 | Subject), ss, family = t_family, start = list(psi = log(3)), map = list(psi = factor(NA)))
cases$t_fixed_df <- out(m, "sleepstudy", "Reaction ~ Days + (1 | Subject)", "t",
  "list(psi = log(3))", "list(psi = factor(NA))", list(psi = list(log(3))), list(psi = list(NULL)))
m <- glmmTMB(cbind(incidence, size - incidence) ~ period + (1 | herd), cb, family = binomial,
             start = list(theta = log(0.5), beta = c(-1.5, 0, 0, 0)), map = list(theta = factor(NA), beta = factor(c(1, NA, 2, 3))))
cases$binomial_fixed_sd_and_beta <- out(m, "cbpp", "cbind(incidence, size - incidence) ~ period + (1 | herd)", "binomial",
  "list(theta = log(0.5), beta = c(-1.5, 0, 0, 0))", "list(theta = factor(NA), beta = factor(c(1, NA, 2, 3)))",
  list(theta = list(log(0.5)), beta = c(-1.5, 0, 0, 0)), list(theta = list(NULL), beta = list(0, NULL, 1, 2)))
m <- glmmTMB(incidence ~ period + (1 | herd), cb, family = poisson, start = list(theta = 0.3))
cases$poisson_start_only <- out(m, "cbpp", "incidence ~ period + (1 | herd)", "poisson",
  "list(theta = 0.3)", "", list(theta = list(0.3)), NULL)
th4 <- c(3, 1.6, 0.5, 0.2, 0.3, -0.4, 0.5, 0.2, -0.3, 0.6)
m <- glmmTMB(Reaction ~ Days + (1 + Days + z + v | Subject), ss, start = list(theta = th4), map = list(theta = factor(rep(NA, 10))))
cases$us4_fixed_theta <- out(m, "sleepstudy", "Reaction ~ Days + (1 + Days + z + v | Subject)", "gaussian",
  "list(theta = th4)", "list(theta = factor(rep(NA, 10)))", list(theta = th4), list(theta = rep(list(NULL), 10)))
writeLines(toJSON(list(cases = cases, glmmTMB = as.character(packageVersion("glmmTMB")), R = R.version.string),
                  digits = NA, auto_unbox = TRUE, pretty = TRUE, null = "null"),
           "tests/reference/mapping/mapping.json")
