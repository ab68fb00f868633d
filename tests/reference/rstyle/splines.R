# ns() and bs() spline terms: R's knots, boundary rules and basis columns, an lmer and a glmer fit
# with them, and predictions on new data beyond the boundary knots (issue 17, item 5).
# Run from the repository root: Rscript tests/reference/rstyle/splines.R
suppressMessages({library(lme4); library(splines); library(jsonlite)})
set.seed(17)
n <- 150
d <- data.frame(x = round(runif(n, 0, 10), 3), g = factor(rep(1:15, each = 10)))
d$x[1:3] <- c(2.5, 2.5, 2.5)  # ties: quantiles between equal values
b <- rnorm(15, sd = 0.4)
d$y <- sin(d$x / 2) + b[d$g] + rnorm(n, sd = 0.3)
d$count <- rpois(n, exp(0.5 + 0.8 * sin(d$x / 2) + b[d$g]))
write.csv(d, "tests/reference/rstyle/splines.csv", row.names = FALSE)
newx <- c(-1.5, 0, 0.3, 2.5, 5, 9.99, 10.5, 13)
nd <- data.frame(x = newx, g = factor(1, levels = levels(d$g)))
specs <- list(
  list(r = "ns(x, 3)", py = "ns(x, 3)"),
  list(r = "ns(x, df = 5, intercept = TRUE)", py = "ns(x, df=5, intercept=True)"),
  list(r = "ns(x, knots = c(2, 6), Boundary.knots = c(1, 9))", py = "ns(x, knots=[2, 6], boundary_knots=[1, 9])"),
  list(r = "ns(x, df = 4, Boundary.knots = c(1, 9))", py = "ns(x, df=4, boundary_knots=[1, 9])"),
  list(r = "ns(x, df = 1)", py = "ns(x, df=1)"),
  list(r = "bs(x, df = 5)", py = "bs(x, df=5)"),
  list(r = "bs(x, 6, degree = 2)", py = "bs(x, 6, degree=2)"),
  list(r = "bs(x, knots = c(3, 7), intercept = TRUE)", py = "bs(x, knots=[3, 7], intercept=True)"),
  list(r = "bs(x, df = 5, Boundary.knots = c(1, 9))", py = "bs(x, df=5, boundary_knots=[1, 9])"),
  list(r = "bs(x, degree = 1, df = 3)", py = "bs(x, degree=1, df=3)")
)
bases <- lapply(specs, function(s) {
  B <- suppressWarnings(eval(parse(text = s$r), d))
  P <- suppressWarnings(predict(B, newx))
  list(r = s$r, py = s$py, knots = unname(as.numeric(attr(B, "knots"))),
       boundary = unname(attr(B, "Boundary.knots")), basis = unname(as.matrix(B)), newdata = unname(as.matrix(P)))
})
m1 <- lmer(y ~ ns(x, 3) + (1 | g), data = d, REML = FALSE)
m2 <- glmer(count ~ bs(x, df = 5) + (1 | g), data = d, family = poisson,  # tight tolerances: a converged reference
            control = glmerControl(optimizer = "nloptwrap", optCtrl = list(xtol_abs = 1e-12, ftol_abs = 1e-14, xtol_rel = 1e-12, maxeval = 1e5)))
fit_out <- function(m, call) list(call = call, logLik = as.numeric(logLik(m)), names = names(fixef(m)),
  fixef = unname(fixef(m)), newdata_x = newx,
  predict = unname(suppressWarnings(predict(m, newdata = nd, re.form = NA))))
out <- list(bases = bases, newx = newx,
            lmer = fit_out(m1, "lmer(y ~ ns(x, 3) + (1 | g), data = d, REML = FALSE)"),
            glmer = fit_out(m2, "glmer(count ~ bs(x, df = 5) + (1 | g), data = d, family = poisson, tight nloptwrap tolerances)"),
            R = R.version.string, lme4 = as.character(packageVersion("lme4")))
writeLines(toJSON(out, digits = NA, auto_unbox = TRUE, pretty = FALSE, matrix = "rowmajor"),
           "tests/reference/rstyle/splines.json")
