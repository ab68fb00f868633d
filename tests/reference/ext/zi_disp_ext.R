## glmmTMB 1.1.5 references for zero-inflated Gamma / tweedie / beta-binomial and Student t with a
## dispersion model (glmmdiag issue 13). Simulates the four data sets with fixed seeds, writes them
## to tests/data/*.csv, fits them and writes tests/reference/ext/<case>.json.
## Run from the repository root:  Rscript tests/reference/ext/zi_disp_ext.R
suppressMessages({library(glmmTMB); library(jsonlite)})
RNGkind("Mersenne-Twister", "Inversion", "Rejection")
out_data <- "tests/data"; out_ref <- "tests/reference/ext"

grp <- function(n, ng) factor(sprintf("g%02d", rep(seq_len(ng), length.out = n)), levels = sprintf("g%02d", seq_len(ng)))

## --- data --------------------------------------------------------------------------------------
sims <- list()
# semicontinuous: Gamma (shape 3, log mu = 1 + 0.5 x + u, sd(u) 0.5) with zeros, logit pi = -0.8 + 0.7 z
set.seed(20261130)
n <- 400; g <- grp(n, 20); x <- round(rnorm(n), 4); z <- round(rnorm(n), 4); u <- rnorm(20, 0, 0.5)
mu <- exp(1 + 0.5 * x + u[as.integer(g)])
y <- rgamma(n, shape = 3, scale = mu / 3)
y[runif(n) < plogis(-0.8 + 0.7 * z)] <- 0
sims$zigamma_sim <- data.frame(g = g, x = x, z = z, y = signif(y, 10))
# tweedie (p = 1.4, phi = 1, log mu = 0.5 + 0.4 x + u, sd(u) 0.4) with extra zeros, logit pi = -1 + 0.8 z
set.seed(20261131)
n <- 400; g <- grp(n, 20); x <- round(rnorm(n), 4); z <- round(rnorm(n), 4); u <- rnorm(20, 0, 0.4)
mu <- exp(0.5 + 0.4 * x + u[as.integer(g)]); p <- 1.4; phi <- 1
lam <- mu^(2 - p) / (phi * (2 - p)); N <- rpois(n, lam)
y <- ifelse(N > 0, rgamma(n, shape = pmax(N, 1) * (2 - p) / (p - 1), scale = phi * (p - 1) * mu^(p - 1)), 0)
y[runif(n) < plogis(-1 + 0.8 * z)] <- 0
sims$zitweedie_sim <- data.frame(g = g, x = x, z = z, y = signif(y, 10))
# beta-binomial (size 5..20, logit mu = -0.5 + 0.6 x + u, sd(u) 0.5, phi = 5) with extra zeros, logit pi = -1.2 + 0.9 z
set.seed(20261132)
n <- 300; g <- grp(n, 20); x <- round(rnorm(n), 4); z <- round(rnorm(n), 4); u <- rnorm(20, 0, 0.5)
size <- sample(5:20, n, replace = TRUE)
mu <- plogis(-0.5 + 0.6 * x + u[as.integer(g)]); phi <- 5
y <- rbinom(n, size, rbeta(n, mu * phi, (1 - mu) * phi))
y[runif(n) < plogis(-1.2 + 0.9 * z)] <- 0
sims$zibetabin_sim <- data.frame(g = g, x = x, z = z, size = size, y = y)
# Student t (df 5) with log sigma = 0 + 0.6 h (h = lo/hi), y = 2 + x + u + sigma T, sd(u) 1
set.seed(20261133)
n <- 400; g <- grp(n, 20); x <- round(rnorm(n), 4); u <- rnorm(20, 0, 1)
h <- factor(sample(c("lo", "hi"), n, replace = TRUE), levels = c("lo", "hi"))
y <- 2 + x + u[as.integer(g)] + exp(0.6 * (h == "hi")) * rt(n, df = 5)
sims$tdisp_sim <- data.frame(g = g, x = x, h = h, y = signif(y, 10))
for (nm in names(sims)) write.csv(sims[[nm]], file.path(out_data, paste0(nm, ".csv")), row.names = FALSE)

## --- fits --------------------------------------------------------------------------------------
read_sim <- function(nm, factors) {  # as the tests read it back: factor levels sorted as above
  d <- read.csv(file.path(out_data, paste0(nm, ".csv")))
  for (f in names(factors)) d[[f]] <- factor(d[[f]], levels = factors[[f]])
  d
}
cases <- list(
  zigamma_sim = list(data = "zigamma_sim", factors = list(g = sprintf("g%02d", 1:20)),
    call = "glmmTMB(y ~ x + (1 | g), ziformula = ~ z, family = ziGamma(link = \"log\"), data = dat)"),
  zitweedie_sim = list(data = "zitweedie_sim", factors = list(g = sprintf("g%02d", 1:20)),
    call = "glmmTMB(y ~ x + (1 | g), ziformula = ~ z, family = tweedie(link = \"log\"), data = dat)"),
  zibetabin_sim = list(data = "zibetabin_sim", factors = list(g = sprintf("g%02d", 1:20)),
    call = "glmmTMB(cbind(y, size - y) ~ x + (1 | g), ziformula = ~ z, family = betabinomial, data = dat)"),
  tdisp_sim = list(data = "tdisp_sim", factors = list(g = sprintf("g%02d", 1:20), h = c("lo", "hi")),
    call = "glmmTMB(y ~ x + (1 | g), dispformula = ~ h, family = t_family, data = dat)")
)
tab <- function(cf) {
  if (is.null(cf) || !nrow(cf)) return(NULL)
  list(names = rownames(cf), estimate = unname(cf[, 1]), se = unname(cf[, 2]), statistic = unname(cf[, 3]),
       statistic_name = "z value", p_value = unname(cf[, 4]))
}
vers <- list(R = R.version.string, glmmTMB = as.character(packageVersion("glmmTMB")),
             TMB = as.character(packageVersion("TMB")), Matrix = as.character(packageVersion("Matrix")),
             jsonlite = as.character(packageVersion("jsonlite")), platform = R.version$platform)
for (case in names(cases)) {
  cs <- cases[[case]]
  dat <- read_sim(cs$data, cs$factors)
  expr <- parse(text = cs$call)[[1]]
  warn <- character(0)
  m <- withCallingHandlers(eval(expr), warning = function(w) {warn <<- c(warn, conditionMessage(w)); invokeRestart("muffleWarning")})
  el <- replicate(3, system.time(suppressWarnings(eval(expr)))[["elapsed"]])
  s <- summary(m)$coefficients
  vc <- VarCorr(m)$cond
  random <- lapply(names(vc), function(nm) list(group = nm, terms = colnames(vc[[nm]]),
    variance = unname(diag(vc[[nm]])), sd = unname(attr(vc[[nm]], "stddev")), correlation = NULL))
  par <- m$fit$par; names(par) <- make.unique(names(par))
  fp <- list()
  if (family(m)$family == "tweedie") fp[["Tweedie power"]] <- unname(plogis(m$fit$par[["psi"]]) + 1)
  if (family(m)$family == "t") fp[["df"]] <- unname(exp(m$fit$par[["psi"]]))
  re <- ranef(m, condVar = TRUE)$cond[[1]]
  fit <- list(nobs = nobs(m), ngroups = as.list(m$modelInfo$nobs), family = family(m)$family, link = family(m)$link,
    fixed = tab(s$cond), zi_fixed = tab(s$zi), disp_fixed = tab(s$disp), random = random,
    sigma = if (is.null(s$disp)) sigma(m) else NULL,
    betad = unname(m$fit$par[names(m$fit$par) == "betad"]),
    logLik = as.numeric(logLik(m)), df_logLik = attr(logLik(m), "df"), AIC = AIC(m), BIC = BIC(m),
    df_resid = df.residual(m), REML = FALSE, par = as.list(par), convergence = m$fit$convergence,
    pdHess = m$sdr$pdHess, optimizer_message = m$fit$message,
    ranef_first_term = list(term = names(ranef(m)$cond)[1], levels = rownames(re)[1:10],
      modes = unname(re[1:10, 1]), cond_sd = unname(sqrt(attr(re, "condVar")[1, 1, 1:10]))),
    psi = unname(m$fit$par[names(m$fit$par) == "psi"]), family_params = fp)
  fit$ngroups <- list(g = 20L)
  doc <- list(case = case, engine = "glmmTMB", call = cs$call,
    data = paste0("tests/data/", cs$data, ".csv"), script = "tests/reference/ext/zi_disp_ext.R",
    data_prep = paste0("dat <- read.csv(...); factor levels ", paste(names(cs$factors), collapse = ", "), " as in the script"),
    versions = vers,
    timing = list(elapsed_s = el, median_s = median(el), method = "system.time()[['elapsed']], median of 3 sequential fits, Rscript"),
    warnings = warn, fit = fit)
  writeLines(toJSON(doc, auto_unbox = TRUE, digits = NA, pretty = TRUE, null = "null"), file.path(out_ref, paste0(case, ".json")))
  cat(case, ": logLik", fit$logLik, " conv", fit$convergence, " pdHess", fit$pdHess, " warnings:", length(warn), "\n")
  print(m$fit$par)
}
