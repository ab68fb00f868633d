## glmmTMB 1.1.5 references for glmmdiag issue 13 (part zi13): dispformula = ~0 (no residual
## variance; glmmTMB fixes betad = log sigma^2 at log(sqrt(.Machine$double.eps))), a tweedie fit to
## a response without zeros (Gamma-like data: the power goes to its bound 2), and random effects in
## ziformula. Simulates tests/data/tweedie_nozero_sim.csv with a fixed seed, fits the cases and
## writes tests/reference/ext/<case>.json.
## Run from the repository root:  Rscript tests/reference/ext/zi13_ext.R
suppressMessages({library(glmmTMB); library(jsonlite)})
RNGkind("Mersenne-Twister", "Inversion", "Rejection")
out_data <- "tests/data"; out_ref <- "tests/reference/ext"
schema <- fromJSON("tests/data/schema.json", simplifyVector = FALSE)
load_data <- function(name) {
  d <- read.csv(file.path("tests/data", paste0(name, ".csv")), stringsAsFactors = FALSE)
  for (col in names(schema[[name]]$columns)) {
    spec <- schema[[name]]$columns[[col]]
    if (spec$type %in% c("factor", "ordered")) d[[col]] <- factor(as.character(d[[col]]), levels = unlist(spec$levels))
  }
  d
}

## --- data: Gamma responses (shape 2, log mu = 1 + 0.5 x + u_g, sd(u) 0.4): no zeros -------------
set.seed(20261201)
n <- 300; g <- factor(sprintf("g%02d", rep(1:30, length.out = n)), levels = sprintf("g%02d", 1:30))
x <- round(rnorm(n), 4); u <- rnorm(30, 0, 0.4)
mu <- exp(1 + 0.5 * x + u[as.integer(g)])
y <- rgamma(n, shape = 2, scale = mu / 2)
write.csv(data.frame(g = g, x = x, y = signif(y, 10)), file.path(out_data, "tweedie_nozero_sim.csv"), row.names = FALSE)

ar1 <- load_data("ar1_sim")
ar1$obs <- factor(seq_len(nrow(ar1)))
sal <- load_data("Salamanders"); sal$site <- factor(as.character(sal$site), levels = levels(sal$site))  # unordered, as glmmdiag
tw <- read.csv(file.path(out_data, "tweedie_nozero_sim.csv")); tw$g <- factor(tw$g, levels = sprintf("g%02d", 1:30))

cases <- list(
  ar1_disp0 = list(data = "ar1", call = "glmmTMB(y ~ x + ar1(times + 0 | group), dispformula = ~0, data = ar1)"),
  # an observation-level random effect carries all the residual variance: the same model as
  # lmer(y ~ x + (1 | group), REML = FALSE) (its logLik, fixed effects and SDs are stored too)
  ar1_olre_disp0 = list(data = "ar1",
    call = "glmmTMB(y ~ x + (1 | group) + (1 | obs), dispformula = ~0, data = ar1)",
    lmer = "lme4::lmer(y ~ x + (1 | group), data = ar1, REML = FALSE)"),
  tweedie_nozero = list(data = "tw", call = "glmmTMB(y ~ x + (1 | g), family = tweedie(link = \"log\"), data = tw)"),
  salamanders_zip_zire = list(data = "sal",
    call = "glmmTMB(count ~ mined + (1 | site), ziformula = ~ mined + (1 | site), family = poisson, data = sal)"),
  salamanders_zip_spp_zire = list(data = "sal",
    call = "glmmTMB(count ~ spp + mined + (1 | site), ziformula = ~ spp + (1 | site), family = poisson, data = sal)"),
  # (with ziformula = ~ mined + (1 | site) glmmTMB 1.1.5 stops with false convergence and a
  # non-positive-definite Hessian: no reference)
  salamanders_zinb2_zire = list(data = "sal",
    call = "glmmTMB(count ~ mined + (1 | site), ziformula = ~ (1 | site), family = nbinom2, data = sal)")
)
tab <- function(cf) {
  if (is.null(cf) || !nrow(cf)) return(NULL)
  list(names = rownames(cf), estimate = unname(cf[, 1]), se = unname(cf[, 2]))
}
vc_list <- function(vc) lapply(names(vc), function(nm) list(group = nm, terms = colnames(vc[[nm]]),
  variance = unname(diag(vc[[nm]])), sd = unname(attr(vc[[nm]], "stddev")),
  correlation = if (ncol(vc[[nm]]) > 1) unname(attr(vc[[nm]], "correlation")) else NULL))
vers <- list(R = R.version.string, glmmTMB = as.character(packageVersion("glmmTMB")),
             TMB = as.character(packageVersion("TMB")), Matrix = as.character(packageVersion("Matrix")),
             jsonlite = as.character(packageVersion("jsonlite")), platform = R.version$platform)
args <- commandArgs(trailingOnly = TRUE)  # optional: the cases to run (all by default)
for (case in if (length(args)) args else names(cases)) {
  cs <- cases[[case]]
  expr <- parse(text = cs$call)[[1]]
  warn <- character(0)
  m <- withCallingHandlers(eval(expr), warning = function(w) {warn <<- c(warn, conditionMessage(w)); invokeRestart("muffleWarning")})
  el <- replicate(3, system.time(suppressWarnings(eval(expr)))[["elapsed"]])
  s <- summary(m)$coefficients
  par <- m$fit$par; names(par) <- make.unique(names(par))
  fp <- list()
  if (family(m)$family == "tweedie") fp[["Tweedie power"]] <- unname(plogis(m$fit$par[["psi"]]) + 1)
  fit <- list(nobs = nobs(m), family = family(m)$family, link = family(m)$link,
    fixed = tab(s$cond), zi_fixed = tab(s$zi), disp_fixed = tab(s$disp),
    random = vc_list(VarCorr(m)$cond), zi_random = if (!is.null(VarCorr(m)$zi)) vc_list(VarCorr(m)$zi) else NULL,
    sigma = sigma(m), betad = unname(m$obj$env$parList()$betad),
    logLik = as.numeric(logLik(m)), df_logLik = attr(logLik(m), "df"), AIC = AIC(m),
    par = as.list(par), theta = unname(m$obj$env$parList()$theta), thetazi = unname(m$obj$env$parList()$thetazi),
    convergence = m$fit$convergence, pdHess = m$sdr$pdHess, optimizer_message = m$fit$message,
    family_params = fp)
  if (!is.null(cs$lmer)) {
    l <- eval(parse(text = cs$lmer)[[1]])
    vl <- as.data.frame(lme4::VarCorr(l))
    fit$lmer <- list(call = cs$lmer, logLik = as.numeric(logLik(l)), fixed = unname(lme4::fixef(l)),
      se = unname(sqrt(diag(as.matrix(vcov(l))))), sd = setNames(as.list(vl$sdcor), vl$grp))
  }
  doc <- list(case = case, engine = "glmmTMB", call = cs$call, data = cs$data,
    script = "tests/reference/ext/zi13_ext.R", versions = vers,
    timing = list(elapsed_s = el, median_s = median(el), method = "system.time()[['elapsed']], median of 3 sequential fits, Rscript"),
    warnings = warn, fit = fit)
  writeLines(toJSON(doc, auto_unbox = TRUE, digits = NA, pretty = TRUE, null = "null"), file.path(out_ref, paste0(case, ".json")))
  cat(case, ": logLik", fit$logLik, " conv", fit$convergence, " pdHess", fit$pdHess, " warnings:", paste(warn, collapse = " | "), " median s", median(el), "\n")
  print(m$fit$par)
}
