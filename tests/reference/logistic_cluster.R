# Reference values for logistic() with weights and clusters (tests/stats/regression/test_regression.py):
# R glm(binomial) on the UCLA admissions data (tests/data/ucla_admissions.csv) with sandwich's
# vcovCL (cluster-robust, type HC1: G/(G-1) (N-1)/(N-K)) and sandwich (HC0).
# Deterministic weights and clusters, rebuilt identically in the test (i = 0, ..., 399 the row number):
#   w  = 0.5 + ((37 * i) %% 11) / 4     probability weights
#   fw = 1 + (i %% 3)                   frequency weights
#   cl = i %% 40                        clusters
# Run from the repository root: Rscript tests/reference/logistic_cluster.R (R 4.2.2, sandwich, jsonlite);
# writes tests/reference/logistic_cluster.json.
library(sandwich)
library(jsonlite)
d <- read.csv("tests/data/ucla_admissions.csv")
i <- seq_len(nrow(d)) - 1
d$w <- 0.5 + ((37 * i) %% 11) / 4
d$fw <- 1 + (i %% 3)
d$cl <- i %% 40
f <- admit ~ gre + gpa + factor(rank)
# probability weights: glm warns about non-integer successes; the estimates are the weighted ML ones
pw <- suppressWarnings(glm(f, family = binomial, data = d, weights = w))
# frequency weights: the same model on the rows replicated fw times (clusters follow their rows)
expanded <- d[rep(seq_len(nrow(d)), d$fw), ]
fe <- glm(f, family = binomial, data = expanded)
se <- function(v) unname(sqrt(diag(v)))
out <- list(
  R = R.version.string, sandwich = as.character(packageVersion("sandwich")),
  terms = names(coef(pw)),
  pw_coef = unname(coef(pw)),
  pw_cluster_hc1_se = se(vcovCL(pw, cluster = ~cl, type = "HC1")),
  pw_hc0_se = se(sandwich(pw)),
  fw_coef = unname(coef(fe)),
  fw_cluster_hc1_se = se(vcovCL(fe, cluster = ~cl, type = "HC1")),
  unweighted_cluster_hc1_se = se(vcovCL(glm(f, family = binomial, data = d), cluster = ~cl, type = "HC1"))
)
write_json(out, "tests/reference/logistic_cluster.json", digits = NA, auto_unbox = TRUE, pretty = TRUE)
