#!/usr/bin/env Rscript
# R side of `residuals_bench.py --step`: times DHARMa's whole residual step on fitted models.
#
# Usage:  Rscript benchmarks/residuals_step.R SPEC.json [OUT.json]
#
# SPEC.json (written by residuals_bench.py):
#   {"data_dir": "...", "schema": ".../schema.json", "n_sim": 1000, "reps": 3,
#    "jobs": [{"case": "...", "dataset": "cbpp", "factors": [] (columns to make factors when the
#              data set is not in schema.json), "prep": "<R code or empty>",
#              "call": "glmmTMB(... data = dat ...)", "conditional": false}, ...]}
#
# For every job the model is fitted once (not timed); then the step
#   s <- simulateResiduals(fit, n = n_sim, seed = 1[, re.form = NULL])   # re.form = NULL: lme4
#        conditional simulation (DHARMa 0.5's default for lme4); glmmTMB 1.1.5 simulates unconditionally
#   testUniformity(s, plot = FALSE); testDispersion(s, plot = FALSE)
#   testZeroInflation(s, plot = FALSE); testOutliers(s, plot = FALSE)
#   testQuantiles(s, plot = FALSE)                 # only when the R package qgam is installed
# runs once untimed (warm-up) and then `reps` times, each part timed with system.time():
# elapsed (wall) and CPU (user + system of the R process). The result JSON holds, per job, the
# per-part times of every rep, the medians of the totals, the p-values of the tests, and whether
# testQuantiles ran. DHARMa is loaded from the library paths in the environment variable
# DHARMA_LIB (colon-separated; prepended to .libPaths()) or from the default library.

if (!requireNamespace("jsonlite", quietly = TRUE)) {
  message("residuals_step.R: the R package jsonlite is required")
  quit(status = 3)
}
lib <- Sys.getenv("DHARMA_LIB")
if (nzchar(lib)) .libPaths(c(strsplit(lib, ":", fixed = TRUE)[[1]], .libPaths()))
if (!requireNamespace("DHARMa", quietly = TRUE)) {
  message("residuals_step.R: the R package DHARMa is not installed")
  quit(status = 4)
}
suppressPackageStartupMessages({
  library(DHARMa)
  library(lme4)
  library(glmmTMB)
})
has_qgam <- requireNamespace("qgam", quietly = TRUE)

args <- commandArgs(trailingOnly = TRUE)
if (length(args) < 1) {
  message("usage: Rscript residuals_step.R SPEC.json [OUT.json]")
  quit(status = 2)
}
spec <- jsonlite::fromJSON(args[[1]], simplifyVector = FALSE)
schema <- jsonlite::fromJSON(spec$schema, simplifyVector = FALSE)
n_sim <- as.integer(spec$n_sim)
reps <- as.integer(spec$reps)

load_data <- function(dataset, factors = NULL) {
  cols <- schema[[dataset]]$columns
  path <- file.path(spec$data_dir, paste0(dataset, ".csv"))
  if (is.null(cols)) {
    dat <- utils::read.csv(path, check.names = FALSE)
    for (nm in unlist(factors)) dat[[nm]] <- factor(dat[[nm]])
    return(dat)
  }
  dat <- utils::read.csv(path, colClasses = "character", check.names = FALSE)
  for (nm in names(cols)) {
    type <- cols[[nm]]$type
    if (type %in% c("factor", "ordered")) {
      dat[[nm]] <- factor(dat[[nm]], levels = unlist(cols[[nm]]$levels),
                          ordered = identical(type, "ordered"))
    } else if (identical(type, "integer")) {
      dat[[nm]] <- as.integer(dat[[nm]])
    } else {
      dat[[nm]] <- as.numeric(dat[[nm]])
    }
  }
  dat
}

cpu_of <- function(st) unname(st[["user.self"]] + st[["sys.self"]])

one_step <- function(fit, conditional) {
  sim_args <- if (isTRUE(conditional)) list(re.form = NULL) else list()
  parts <- list()
  pv <- list()
  st <- system.time(s <- do.call(simulateResiduals, c(list(fit, n = n_sim, seed = 1), sim_args)))
  parts$simulateResiduals <- st
  st <- system.time(u <- testUniformity(s, plot = FALSE)); parts$testUniformity <- st; pv$uniformity <- u$p.value
  st <- system.time(d <- testDispersion(s, plot = FALSE)); parts$testDispersion <- st; pv$dispersion <- d$p.value
  st <- system.time(z <- testZeroInflation(s, plot = FALSE)); parts$testZeroInflation <- st
  pv$zero_inflation <- z$p.value
  st <- system.time(o <- suppressMessages(testOutliers(s, plot = FALSE))); parts$testOutliers <- st
  pv$outliers <- o$p.value
  if (has_qgam) {
    st <- system.time(q <- suppressMessages(testQuantiles(s, plot = FALSE))); parts$testQuantiles <- st
    pv$quantiles <- q$p.value
  }
  list(wall = lapply(parts, function(x) unname(x[["elapsed"]])),
       cpu = lapply(parts, cpu_of), p = pv, nobs = s$nObs)
}

results <- list()
for (job in spec$jobs) {
  message("residuals_step.R: ", job$case)
  res <- list(case = job$case, call = job$call, conditional = isTRUE(job$conditional), error = NULL)
  out <- tryCatch({
    dat <- load_data(job$dataset, job$factors)
    if (!is.null(job$prep) && nzchar(job$prep)) eval(parse(text = job$prep))
    fit <- suppressWarnings(eval(parse(text = job$call)))
    one_step(fit, job$conditional)  # warm-up
    runs <- lapply(seq_len(reps), function(i) one_step(fit, job$conditional))
    tot_wall <- vapply(runs, function(r) sum(unlist(r$wall)), 0)
    tot_cpu <- vapply(runs, function(r) sum(unlist(r$cpu)), 0)
    parts_wall <- lapply(names(runs[[1]]$wall), function(nm) stats::median(vapply(runs, function(r) r$wall[[nm]], 0)))
    names(parts_wall) <- names(runs[[1]]$wall)
    parts_cpu <- lapply(names(runs[[1]]$cpu), function(nm) stats::median(vapply(runs, function(r) r$cpu[[nm]], 0)))
    names(parts_cpu) <- names(runs[[1]]$cpu)
    list(nobs = runs[[1]]$nobs, wall_s = as.list(tot_wall), cpu_s = as.list(tot_cpu),
         median_wall_s = stats::median(tot_wall), median_cpu_s = stats::median(tot_cpu),
         parts_median_wall_s = parts_wall, parts_median_cpu_s = parts_cpu, p_values = runs[[1]]$p)
  }, error = function(e) list(error = conditionMessage(e)))
  results[[length(results) + 1]] <- c(res[setdiff(names(res), names(out))], out)
}

info <- list(R = R.version.string, DHARMa = as.character(utils::packageVersion("DHARMa")),
             DHARMa_path = find.package("DHARMa"),
             glmmTMB = as.character(utils::packageVersion("glmmTMB")),
             lme4 = as.character(utils::packageVersion("lme4")),
             qgam = if (has_qgam) as.character(utils::packageVersion("qgam")) else NA,
             testQuantiles_run = has_qgam, n_sim = n_sim, reps = reps)
txt <- jsonlite::toJSON(list(info = info, results = results), auto_unbox = TRUE, digits = NA,
                        null = "null", na = "null", pretty = TRUE)
if (length(args) >= 2) writeLines(txt, args[[2]]) else cat(txt, "\n")
