# Reference values for hostats.stats.regression.logit.logistic (tests/stats/regression/test_regression.py):
# maximum-likelihood logistic regression with R's glm, profile-likelihood limits from confint() (MASS
# profiling in R < 4.4) on the UCLA admissions data (tests/data/ucla_admissions.csv; the values UCLA OARC
# publish in "Logit regression | R data analysis examples"), and Firth's penalised estimate with its
# standard errors sqrt(diag((X'WX)^-1)) on logistf's sex2 data (brglm2, type = "AS_mean": the same
# estimator as logistf), rebuilt from the counts the test types in (SEX2_COUNTS).
# Run from the repository root:  Rscript tests/reference/regression.R   (writes tests/reference/regression.json)
suppressMessages({library(MASS); library(jsonlite)})
adm <- read.csv("tests/data/ucla_admissions.csv")
adm$rank <- factor(adm$rank)
fit <- glm(admit ~ gre + gpa + rank, family = binomial, data = adm)
ci <- suppressMessages(confint(fit))
out <- list(generated_by = "tests/reference/regression.R", r_version = R.version.string,
            MASS_version = as.character(packageVersion("MASS")),
            ucla_glm = list(r_call = "glm(admit ~ gre + gpa + factor(rank), family = binomial); confint(fit)",
                            term = names(coef(fit)), coef = unname(coef(fit)),
                            std_error = unname(sqrt(diag(vcov(fit)))), deviance = deviance(fit),
                            profile_lower = unname(ci[, 1]), profile_upper = unname(ci[, 2])))
if (requireNamespace("brglm2", quietly = TRUE)) {
  counts <- matrix(c(
    1,1,1,1,0,0,0,3, 1,1,1,0,0,0,0,5, 1,1,0,1,1,1,1,1, 1,1,0,1,1,0,0,1, 1,1,0,1,0,1,1,1, 1,1,0,1,0,1,0,1,
    1,1,0,1,0,0,0,2, 1,0,1,1,1,1,0,3, 1,0,1,1,1,0,0,7, 1,0,1,1,0,1,0,2, 1,0,1,1,0,0,1,1, 1,0,1,1,0,0,0,15,
    1,0,1,0,0,0,1,3, 1,0,1,0,0,0,0,44, 1,0,0,1,1,1,1,1, 1,0,0,1,1,1,0,12, 1,0,0,1,1,0,0,10, 1,0,0,1,0,1,0,3,
    1,0,0,1,0,0,0,14, 1,0,0,0,0,1,0,1, 0,1,1,1,1,1,0,2, 0,1,1,1,0,0,0,1, 0,1,1,0,0,1,0,1, 0,1,1,0,0,0,0,14,
    0,1,0,1,1,1,0,4, 0,1,0,1,1,0,0,2, 0,0,1,1,1,1,0,6, 0,0,1,1,1,0,0,5, 0,0,1,1,0,0,0,1, 0,0,1,0,0,1,0,1,
    0,0,1,0,0,0,0,42, 0,0,0,1,1,1,0,18, 0,0,0,1,1,0,0,8, 0,0,0,1,0,1,0,1, 0,0,0,1,0,0,0,2, 0,0,0,0,0,1,0,1),
    ncol = 8, byrow = TRUE, dimnames = list(NULL, c("case", "age", "oc", "vic", "vicl", "vis", "dia", "count")))
  sex2 <- as.data.frame(counts[rep(seq_len(nrow(counts)), counts[, "count"]), 1:7])
  stopifnot(nrow(sex2) == 239, sum(sex2$case) == 130)
  if (requireNamespace("logistf", quietly = TRUE)) stopifnot(all(sapply(names(sex2), function(v)
    all(sort(sex2[[v]]) == sort(logistf::sex2[[v]])))))
  ff <- glm(case ~ age + oc + vic + vicl + vis + dia, family = binomial, data = sex2,
            method = brglm2::brglmFit, type = "AS_mean")
  out$sex2_firth <- list(r_call = 'glm(case ~ age + oc + vic + vicl + vis + dia, family = binomial, method = brglm2::brglmFit, type = "AS_mean")',
                         brglm2_version = as.character(packageVersion("brglm2")),
                         term = names(coef(ff)), coef = unname(coef(ff)),
                         std_error = unname(sqrt(diag(vcov(ff)))))
}
writeLines(toJSON(out, auto_unbox = TRUE, digits = NA, pretty = TRUE), "tests/reference/regression.json")
cat("wrote tests/reference/regression.json\n")
