# Export mlmRev's STAR data (complete rows of the model's columns) to tests/data/star.csv.
# Ordered factors (gr, hdeg) are written as plain factor labels; levels of the covariate factors go to star_levels.json.
suppressMessages(library(mlmRev))
data(star)
cols <- c("math", "yrs", "gr", "sx", "eth", "cltype", "schtype", "hdeg", "clad", "exp", "trace",
          "id", "tch", "sch")
d <- star[complete.cases(star[, cols]), cols]
d <- droplevels(d)
stopifnot(nrow(d) == 23758)
write.csv(d, "../../data/star.csv", row.names = FALSE)
lev <- lapply(d[sapply(d, is.factor)], levels)
lev <- lev[setdiff(names(lev), c("id", "tch", "sch"))]  # grouping factors: sorted labels
jsonlite::write_json(lev, "star_levels.json", auto_unbox = FALSE)
