# glmmTMB 1.1.5 fits of the covariance structures that the shared references do not cover
# (issue 14): toep, diag, gau on ar1_sim (glmmTMB 1.1.5 has no homcs or homdiag); REML ar1; gau on spatial_sim.
# Run from the repository root:  Rscript tests/reference/ext/covstruct_extra.R
# Writes tests/reference/ext/covstruct_extra.json.
suppressMessages({library(glmmTMB); library(jsonlite)})
schema <- fromJSON("tests/data/schema.json", simplifyVector = FALSE)
load_data <- function(name) {
  d <- read.csv(file.path("tests/data", paste0(name, ".csv")), stringsAsFactors = FALSE)
  for (col in names(schema[[name]]$columns)) {
    spec <- schema[[name]]$columns[[col]]
    if (identical(spec$type, "factor")) d[[col]] <- factor(as.character(d[[col]]), levels = unlist(spec$levels))
  }
  d
}
ar1 <- load_data("ar1_sim")
sp <- load_data("spatial_sim")
cases <- list(
  ar1_sim_toep = list(call = "glmmTMB(y ~ x + toep(times + 0 | group), data = ar1)"),
  ar1_sim_diag = list(call = "glmmTMB(y ~ x + diag(times + 0 | group), data = ar1)"),
  ar1_sim_gau = list(call = "glmmTMB(y ~ x + gau(numFactor(t) + 0 | group), data = ar1)"),
  ar1_sim_ar1_reml = list(call = "glmmTMB(y ~ x + ar1(times + 0 | group), data = ar1, REML = TRUE)"),
  spatial_gau = list(call = "glmmTMB(count ~ z + gau(numFactor(xc, yc) + 0 | group), family = poisson, data = sp)"),
  spatial_exp_nb2 = list(call = "glmmTMB(count ~ z + exp(numFactor(xc, yc) + 0 | group), family = nbinom2, data = sp)")
)
out <- list(versions = list(R = R.version.string, glmmTMB = as.character(packageVersion("glmmTMB"))))
for (nm in names(cases)) {
  cl <- cases[[nm]]$call
  el <- system.time(m <- eval(parse(text = cl)))[["elapsed"]]
  vc <- VarCorr(m)$cond[[1]]
  sd <- attr(vc, "stddev")
  co <- attr(vc, "correlation")
  cf <- summary(m)$coefficients$cond
  out[[nm]] <- list(call = cl, elapsed_s = el, logLik = as.numeric(logLik(m)), sigma = sigma(m),
                    REML = grepl("REML = TRUE", cl),
                    fixed = list(names = rownames(cf), estimate = unname(cf[, 1]), se = unname(cf[, 2])),
                    sd = unname(sd), sd_names = names(sd), correlation = unname(co),
                    theta = unname(getME(m, "theta")), convergence = m$fit$convergence,
                    pdHess = m$sdr$pdHess)
  cat(nm, "logLik", out[[nm]]$logLik, "\n")
}
writeLines(toJSON(out, digits = NA, auto_unbox = TRUE, pretty = TRUE), "tests/reference/ext/covstruct_extra.json")
