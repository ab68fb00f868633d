# emmeans 1.8.4-1 / car 3.1-1 / glmmTMB 1.1.5 inference on zero-inflated, hurdle and dispersion
# models of the Salamanders data (issue 13: reference numbers for wald_anova(component=...),
# marginal_means(component=...) and confint of the zero / dispersion coefficients). emmeans'
# component = "response" fails for these fits in this version ("argument is not a valid model"):
# marginal_means(component="response") keeps its closed-form tests.
# Run from the repository root: Rscript tests/reference/ext/inference_submodels.R
suppressMessages({library(glmmTMB); library(emmeans); library(car); library(jsonlite)})
schema <- fromJSON("tests/data/schema.json", simplifyVector = FALSE)
d <- read.csv("tests/data/Salamanders.csv", stringsAsFactors = FALSE)
for (col in names(schema$Salamanders$columns)) {
  spec <- schema$Salamanders$columns[[col]]
  if (identical(spec$type, "factor")) d[[col]] <- factor(as.character(d[[col]]), levels = unlist(spec$levels))
}
fits <- list(
  zip = glmmTMB(count ~ spp + mined + (1 | site), ziformula = ~ mined, family = poisson, data = d),
  zinb2 = glmmTMB(count ~ spp + mined + (1 | site), ziformula = ~ mined, family = nbinom2, data = d),
  hnb2 = glmmTMB(count ~ spp + mined + (1 | site), ziformula = ~ spp + mined, family = truncated_nbinom2,
                 data = d),
  nb2_disp = glmmTMB(count ~ spp + mined + (1 | site), dispformula = ~ mined, family = nbinom2, data = d)
)
tab <- function(x) { x <- as.data.frame(x); lapply(as.list(x), function(v) if (is.factor(v)) as.character(v) else v) }
out <- list(versions = list(glmmTMB = as.character(packageVersion("glmmTMB")),
                            emmeans = as.character(packageVersion("emmeans")),
                            car = as.character(packageVersion("car"))))
for (nm in names(fits)) {
  m <- fits[[nm]]
  r <- list(logLik = as.numeric(logLik(m)))
  a <- Anova(m, component = "cond")
  r$anova_cond <- list(terms = rownames(a), chisq = unname(a$Chisq), df = unname(a$Df))
  if (nm != "nb2_disp") {
    a <- Anova(m, component = "zi")
    r$anova_zi <- list(terms = rownames(a), chisq = unname(a$Chisq), df = unname(a$Df))
    r$emm_zi <- tab(emmeans(m, ~ mined, component = "zi", type = "response"))
  } else {
    a <- Anova(m, component = "disp")
    r$anova_disp <- list(terms = rownames(a), chisq = unname(a$Chisq), df = unname(a$Df))
  }
  r$emm_cond <- tab(emmeans(m, ~ spp, component = "cond"))
  ci <- confint(m, method = "wald")
  r$confint <- list(names = rownames(ci), lower = unname(ci[, 1]), upper = unname(ci[, 2]))
  out[[nm]] <- r
  cat(nm, "\n")
}
writeLines(toJSON(out, digits = NA, auto_unbox = TRUE, pretty = TRUE), "tests/reference/ext/inference_submodels.json")
