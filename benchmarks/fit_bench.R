#!/usr/bin/env Rscript
# R side of benchmarks/fit_bench.py: times lme4 / glmmTMB fits of the reference cases.
#
# Usage:  Rscript benchmarks/fit_bench.R SPEC.json [OUT.json]
#
# SPEC.json (written by fit_bench.py):
#   {"data_dir": "...", "schema": ".../schema.json",
#    "jobs": [{"id": "...", "case": "...", "engine": "lme4"|"glmmTMB"|"stats",
#              "dataset": "Contraception", "factors": [] (columns to make factors when the
#              data set is not in schema.json), "prep": "<R code or empty>",
#              "call": "glmer(... data = dat ...)", "reps": 3, "warmup": true}, ...]}
#
# Each job reads <data_dir>/<dataset>.csv, restores the factor levels (R's order) from
# schema.json, evaluates `prep` with the data frame bound to `dat`, runs the call once untimed
# (warm-up, when asked) and then `reps` timed times with system.time()[["elapsed"]] -- the same
# method as tests/reference/*.json -- and reports the median (and the median CPU time of the R
# process, user + system).  The result JSON goes to OUT.json,
# or to stdout when OUT.json is not given; progress goes to stderr.  A job that fails reports
# its error and the others go on.

if (!requireNamespace("jsonlite", quietly = TRUE)) {
  message("fit_bench.R: the R package jsonlite is required (Debian: apt-get install r-cran-jsonlite)")
  quit(status = 3)
}

args <- commandArgs(trailingOnly = TRUE)
if (length(args) < 1) {
  message("usage: Rscript fit_bench.R SPEC.json [OUT.json]")
  quit(status = 2)
}
spec <- jsonlite::fromJSON(args[[1]], simplifyVector = FALSE)
schema <- jsonlite::fromJSON(spec$schema, simplifyVector = FALSE)

engine_pkg <- c(lme4 = "lme4", glmmTMB = "glmmTMB", stats = "stats")
pkg_ok <- list()
for (pkg in unique(engine_pkg)) {
  pkg_ok[[pkg]] <- suppressWarnings(suppressPackageStartupMessages(
    requireNamespace(pkg, quietly = TRUE)))
  if (pkg_ok[[pkg]]) suppressPackageStartupMessages(library(pkg, character.only = TRUE))
}

pkg_version <- function(pkg) {
  if (isTRUE(pkg_ok[[pkg]])) as.character(utils::packageVersion(pkg)) else NA_character_
}

load_data <- function(dataset, factors = NULL) {
  cols <- schema[[dataset]]$columns
  path <- file.path(spec$data_dir, paste0(dataset, ".csv"))
  if (is.null(cols) && length(factors)) {
    # a simulated data set that schema.json does not describe (tests/reference/ext): read.csv's
    # types, the job's `factors` made factors with R's default level order
    dat <- utils::read.csv(path, check.names = FALSE)
    for (nm in unlist(factors)) dat[[nm]] <- factor(dat[[nm]])
    return(dat)
  }
  if (is.null(cols)) stop("dataset '", dataset, "' is not in schema.json")
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

data_cache <- list()
results <- list()

for (job in spec$jobs) {
  res <- list(id = job$id, case = job$case, engine = job$engine, call = job$call,
              times_s = list(), median_s = NULL, logLik = NULL, warnings = list(), error = NULL)
  pkg <- engine_pkg[[job$engine]]
  if (!isTRUE(pkg_ok[[pkg]])) {
    res$error <- paste0("R package ", pkg, " not available")
    message(sprintf("[R] %-28s %-8s %s", job$case, job$engine, res$error))
    results[[length(results) + 1]] <- res
    next
  }
  out <- tryCatch({
    key <- paste(job$dataset, job$prep, sep = "\r")
    if (is.null(data_cache[[key]])) {
      env0 <- new.env(parent = globalenv())
      env0$dat <- load_data(job$dataset, job$factors)
      if (!is.null(job$prep) && nzchar(job$prep)) eval(parse(text = job$prep), envir = env0)
      data_cache[[key]] <- env0$dat
    }
    dat <- data_cache[[key]]
    expr <- parse(text = job$call)[[1]]
    warns <- character(0)
    run_once <- function() {
      env <- new.env(parent = globalenv())
      env$dat <- dat
      fit <- NULL
      st <- withCallingHandlers(
        system.time(fit <- eval(expr, envir = env)),
        warning = function(w) {
          warns <<- c(warns, conditionMessage(w))
          invokeRestart("muffleWarning")
        })
      # CPU time of this R process (user + system): less sensitive to other processes on the machine
      list(elapsed = st[["elapsed"]], cpu = st[["user.self"]] + st[["sys.self"]], fit = fit)
    }
    ll <- NULL
    if (isTRUE(job$warmup)) {
      r <- run_once()
      ll <- as.numeric(stats::logLik(r$fit))
    }
    times <- numeric(0)
    cpu <- numeric(0)
    for (i in seq_len(max(1L, as.integer(job$reps)))) {
      r <- run_once()
      times <- c(times, r$elapsed)
      cpu <- c(cpu, r$cpu)
      if (is.null(ll)) ll <- as.numeric(stats::logLik(r$fit))
    }
    list(times = times, cpu = cpu, ll = ll, warns = unique(warns))
  }, error = function(e) e)
  if (inherits(out, "error")) {
    res$error <- conditionMessage(out)
    message(sprintf("[R] %-28s %-8s error: %s", job$case, job$engine, res$error))
  } else {
    res$times_s <- as.list(out$times)
    res$median_s <- stats::median(out$times)
    res$median_cpu_s <- stats::median(out$cpu)
    res$logLik <- out$ll
    res$warnings <- as.list(out$warns)
    message(sprintf("[R] %-28s %-8s median %9.1f ms over %d runs  logLik %.6f",
                    job$case, job$engine, 1000 * res$median_s, length(out$times), out$ll))
  }
  results[[length(results) + 1]] <- res
}

doc <- list(
  versions = list(R = R.version.string, lme4 = pkg_version("lme4"),
                  glmmTMB = pkg_version("glmmTMB"),
                  Matrix = if (requireNamespace("Matrix", quietly = TRUE))
                    as.character(utils::packageVersion("Matrix")) else NA_character_,
                  BLAS = tryCatch(extSoftVersion()[["BLAS"]], error = function(e) NA_character_)),
  method = "system.time()[['elapsed']], median of `reps` sequential fits after an untimed warm-up (if warmup), one Rscript process",
  results = results)
txt <- jsonlite::toJSON(doc, auto_unbox = TRUE, null = "null", na = "null", digits = NA,
                        pretty = TRUE)
if (length(args) >= 2) {
  writeLines(txt, args[[2]])
} else {
  cat(txt, "\n")
}
