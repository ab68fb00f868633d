# lme4 reference fits of the STAR model (mlmRev's star, complete rows: tests/data/star.csv) and of
# a subset (schools 1-20 by label order, star_small) that the tests fit in seconds.
# The covariate factors get the levels of star_levels.json (all unordered: treatment contrasts);
# the grouping factors id, tch, sch R's default (sorted labels).
# Usage: Rscript star_lmer.R   (writes star_lmer.json next to this script, and the full-data fits
# in the reference-case format as ../ext/star_lmer_ML.json and ../ext/star_lmer_REML.json for
# benchmarks/fit_bench.py)
suppressMessages({library(lme4); library(jsonlite)})
levs <- fromJSON("star_levels.json")
d <- read.csv("../../data/star.csv", stringsAsFactors = FALSE)
for (v in names(levs)) d[[v]] <- factor(as.character(d[[v]]), levels = levs[[v]])
for (v in c("id", "tch", "sch")) d[[v]] <- factor(as.character(d[[v]]))
form <- math ~ yrs + gr + sx + eth + cltype + schtype + hdeg + clad + exp + trace +
  (yrs | id) + (1 | tch) + (yrs | sch)
small_schools <- levels(d$sch)[1:20]
ds <- droplevels(d[d$sch %in% small_schools, ])
ctl <- lmerControl(calc.derivs = FALSE)
one <- function(dat, reml, label) {
  t <- system.time(m <- lmer(form, data = dat, REML = reml, control = ctl))
  vc <- as.data.frame(VarCorr(m))
  list(case = label, call = sprintf("lmer(%s, REML = %s, control = lmerControl(calc.derivs = FALSE))",
                                    paste(deparse(form), collapse = ""), reml),
       nobs = nobs(m), reml = reml, logLik = as.numeric(logLik(m)),
       deviance_criterion = as.numeric(if (reml) REMLcrit(m) else deviance(m)),
       theta = unname(getME(m, "theta")), sigma = sigma(m),
       fixef = as.list(fixef(m)), varcorr = vc, elapsed_s = t[["elapsed"]],
       cpu_s = t[["user.self"]] + t[["sys.self"]],
       ngroups = as.list(sapply(ranef(m), nrow)))
}
out <- list(
  versions = list(R = R.version.string, lme4 = as.character(packageVersion("lme4")),
                  Matrix = as.character(packageVersion("Matrix")),
                  mlmRev = as.character(packageVersion("mlmRev"))),
  small_schools = small_schools,
  fits = list(one(ds, FALSE, "star_small_ML"), one(ds, TRUE, "star_small_REML"),
              one(d, FALSE, "star_ML"), one(d, TRUE, "star_REML")))
write_json(out, "star_lmer.json", auto_unbox = TRUE, digits = NA, pretty = TRUE)
for (f in out$fits[3:4]) {
  case <- if (f$reml) "star_lmer_REML" else "star_lmer_ML"
  call <- sprintf("lmer(%s, data = dat, REML = %s)", paste(deparse(form, width.cutoff = 500), collapse = ""), f$reml)
  write_json(list(case = case, engine = "lmerMod", call = call, data = "tests/data/star.csv",
                  data_prep = NULL, versions = out$versions,
                  timing = list(elapsed_s = f$elapsed_s, median_s = f$elapsed_s, cpu_s = f$cpu_s,
                                method = "system.time() of one fit (calc.derivs = FALSE), Rscript, 2-core VM shared with other jobs"),
                  fit = list(nobs = f$nobs, logLik = f$logLik, theta = f$theta, sigma = f$sigma,
                             fixef = f$fixef)),
             file.path("..", "ext", paste0(case, ".json")), auto_unbox = TRUE, digits = NA,
             pretty = TRUE, null = "null")
}
