# Reference values for hostats.stats.survival.km_cox.cox (tests/stats/survival/test_survival_cox.py):
# Cox proportional-hazards fits (Efron ties) with R's survival package: coefficients, model-based,
# robust and cluster standard errors, strata, case weights, likelihood/score/Wald tests, concordance,
# cox.zph tests and scaled Schoenfeld residuals, and profile-likelihood limits.
# Data: the Rossi recidivism data (lifelines.datasets.load_rossi) with the columns w and cl the test adds
# (_rossi() in the test file). Run from the repository root:
#   python -c "from tests.stats.survival.test_survival_cox import _rossi; _rossi().to_csv('/tmp/rossi.csv', index=False)"
#   Rscript tests/reference/cox.R /tmp/rossi.csv        (writes tests/reference/cox.json)
suppressMessages({library(survival); library(jsonlite)})
args <- commandArgs(trailingOnly = TRUE)
r <- read.csv(args[1])
stopifnot(nrow(r) == 432, all(c("w", "cl") %in% names(r)))
se <- function(f, v = vcov(f)) unname(sqrt(diag(v)))
zph <- function(f, ...) { z <- cox.zph(f, ...)$table; list(term = rownames(z), chisq = unname(z[, "chisq"]),
                                                           df = unname(z[, "df"]), p = unname(z[, "p"])) }

f0 <- coxph(Surv(week, arrest) ~ fin + age + race + wexp + mar + paro + prio, data = r)
z0 <- cox.zph(f0)
f2 <- coxph(Surv(week, arrest) ~ fin + age + prio, data = r, cluster = cl)
f3 <- coxph(Surv(week, arrest) ~ fin + age + prio + strata(wexp), data = r)
f4 <- coxph(Surv(week, arrest) ~ fin + age + prio, data = r, weights = w)   # robust by default
f5 <- coxph(Surv(week, arrest) ~ fin + age + prio + strata(wexp), data = r, weights = w, cluster = cl)
f6 <- coxph(Surv(week, arrest) ~ fin + age + prio + factor(cl %% 3), data = r)

# profile-likelihood limits: the log-likelihood with the coefficient of `term` fixed at v (an offset),
# and the two values where it is qchisq(0.95, 1) / 2 below the maximum
profile <- function(term, others) {
  fit <- coxph(as.formula(paste("Surv(week, arrest) ~", paste(c(term, others), collapse = " + "))), data = r)
  top <- fit$loglik[2]; b <- coef(fit)[[term]]; s <- sqrt(vcov(fit)[term, term])
  pl <- function(v) {
    rhs <- paste(c(others, sprintf("offset(%.17g * %s)", v, term)), collapse = " + ")
    tail(coxph(as.formula(paste("Surv(week, arrest) ~", rhs)), data = r)$loglik, 1)
  }
  g <- function(v) pl(v) - (top - qchisq(0.95, 1) / 2)
  c(uniroot(g, c(b - 5 * s, b), tol = 1e-12)$root, uniroot(g, c(b, b + 5 * s), tol = 1e-12)$root)
}

out <- list(
  generated_by = "tests/reference/cox.R", r_version = R.version.string,
  survival_version = as.character(packageVersion("survival")),
  full = list(r_call = "coxph(Surv(week, arrest) ~ fin + age + race + wexp + mar + paro + prio, data = r)",
              coef = unname(coef(f0)), std_error = se(f0), loglik = f0$loglik, score = f0$score,
              wald = unname(f0$wald.test), concordance = unname(f0$concordance["concordance"]),
              zph_km = zph(f0), zph_identity = zph(f0, transform = "identity"),
              zph_x_head = head(z0$x, 3), zph_y_row1 = unname(z0$y[1, ]),
              zph_y_row2_fin_age_prio = unname(z0$y[2, c("fin", "age", "prio")]),
              robust_std_error = se(update(f0, robust = TRUE))),
  cluster = list(r_call = "coxph(Surv(week, arrest) ~ fin + age + prio, data = r, cluster = cl)",
                 coef = unname(coef(f2)), std_error = se(f2)),
  strata = list(r_call = "coxph(Surv(week, arrest) ~ fin + age + prio + strata(wexp), data = r)",
                coef = unname(coef(f3)), std_error = se(f3), loglik = f3$loglik, zph_km = zph(f3)),
  weights = list(r_call = "coxph(Surv(week, arrest) ~ fin + age + prio, data = r, weights = w)",
                 coef = unname(coef(f4)), naive_std_error = se(f4, f4$naive.var), std_error = se(f4),
                 loglik = f4$loglik, zph_km = zph(f4)),
  weights_cluster_strata = list(
    r_call = "coxph(Surv(week, arrest) ~ fin + age + prio + strata(wexp), data = r, weights = w, cluster = cl)",
    coef = unname(coef(f5)), std_error = se(f5)),
  factor = list(r_call = "coxph(Surv(week, arrest) ~ fin + age + prio + factor(cl %% 3), data = r)",
                coef = unname(coef(f6)), zph_km = zph(f6)),
  profile = list(r_call = "uniroot on the log-likelihood of coxph(Surv(week, arrest) ~ age + prio + offset(v * fin)), tol = 1e-12",
                 fin = profile("fin", c("age", "prio")), prio = profile("prio", c("fin", "age")),
                 fin_alone = profile("fin", character(0))))
writeLines(toJSON(out, auto_unbox = TRUE, digits = NA, pretty = TRUE), "tests/reference/cox.json")
cat("wrote tests/reference/cox.json\n")
