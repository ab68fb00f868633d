# Reference values for tests/test_checks.py: R 4.2.2, lmtest 0.9-40, ape 5.7-1, car 3.1-1 (Debian packages).
# Run: Rscript r_checks.R  (writes the r2 vector to /tmp/r2.txt; values are copied into r_checks.json)
library(lmtest); library(ape); library(car)
r <- c(0.12,0.85,0.97,0.24,0.49,0.58,0.66,0.89,0.31,0.05,0.72,0.44,0.18,0.93,0.37,0.61,0.29,0.77,0.53,0.08,0.95,0.41,0.26,0.69,0.14)
t <- c(25:1)
for (alt in c("greater","two.sided","less")) { d <- dwtest(r ~ 1, order.by = t, alternative=alt); cat("dw", alt, format(d$statistic, digits=15), format(d$p.value, digits=15), "\n") }
set.seed(3); r2 <- runif(150); d <- dwtest(r2 ~ 1, alternative="two.sided"); cat("dw150", format(d$statistic, digits=15), format(d$p.value, digits=15), "\n"); write(r2, "/tmp/r2.txt", ncolumns=1)
x <- c(0, 1, 3, 0.5, 2, 4, 1.5); y <- c(0, 2, 1, 3, 0.2, 2.5, 1.1); v <- c(0.1, 0.8, 0.35, 0.9, 0.2, 0.6, 0.45)
w <- 1/as.matrix(dist(cbind(x,y))); diag(w) <- 0
m <- Moran.I(v, w); cat("moran", format(m$observed, digits=15), format(m$expected, digits=15), format(m$sd, digits=15), format(m$p.value, digits=15), "\n")
m <- Moran.I(v, w, alternative="greater"); cat("moran_g", format(m$p.value, digits=15), "\n")
g <- factor(rep(c("a","b","c"), length.out=25)); l <- leveneTest(r ~ g); cat("levene", format(l[1,"F value"], digits=15), format(l[1,"Pr(>F)"], digits=15), "\n")
print(binom.test(1, 56, 2/1001)$p.value, digits=15)
print(ks.test(r, "punif")$p.value, digits=15)
