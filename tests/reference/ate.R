# Reference values for hostats.ate (tests/stats/causal/test_ate.py). Run from the repository root:
#   Rscript tests/reference/ate.R      (R 4.2, riskRegression 2022.11.28, survival 3.5-3)
# writes tests/reference/ate.json. Estimators: riskRegression::ate "GFORMULA" (cause-specific Cox,
# CSC), "IPTW,IPCW" and "AIPTW,AIPCW" (censoring: Kaplan-Meier stratified by treatment,
# coxph(Surv(time, status == 0) ~ strata(A))), with the default IF SEs (known.nuisance = FALSE) and
# with known.nuisance = TRUE; and survfit's IPTW-weighted Aalen-Johansen risks (weights 1 / e_A(X)) with
# survfit's infinitesimal-jackknife SE (weights treated as fixed). Takes ~4 minutes (AIPTW IF on n = 3000).
suppressMessages({library(riskRegression); library(survival); library(jsonlite); library(nnet)})

run <- function(d, horizon, multi) {
  event <- CSC(Hist(time, status) ~ A + age + male, data = d)
  treat <- if (multi) multinom(A ~ age + male, data = d, trace = FALSE) else glm(A ~ age + male, data = d, family = binomial)
  censor <- coxph(Surv(time, status == 0) ~ strata(A), data = d, x = TRUE)
  out <- list()
  for (known in c(FALSE, TRUE)) {
    r <- ate(event, treatment = treat, censor = censor, data = d, times = horizon, cause = 1,
             estimator = c("GFORMULA", "IPTW,IPCW", "AIPTW,AIPCW"), known.nuisance = known, verbose = FALSE)
    key <- if (known) "known_nuisance" else "default"
    out[[key]] <- list(
      mean = as.data.frame(r$meanRisk[, c("estimator", "treatment", "estimate", "se")]),
      diff = as.data.frame(r$diffRisk[, c("estimator", "A", "B", "estimate", "se")]),
      ratio = as.data.frame(r$ratioRisk[, c("estimator", "A", "B", "estimate", "se")]))
  }
  P <- if (multi) predict(treat, type = "probs") else cbind(1 - fitted(treat), fitted(treat))
  lev <- levels(d$A)
  d$w <- 1 / P[cbind(seq_len(nrow(d)), match(d$A, lev))]
  sf <- survfit(Surv(time, factor(status)) ~ A, data = d, weights = w)
  s <- summary(sf, times = horizon, extend = TRUE)
  states <- sf$states
  aj <- data.frame(treatment = sub("A=", "", as.character(s$strata)), estimate = s$pstate[, states == "1"],
                   se_weights_fixed = s$std.err[, states == "1"])
  out$weighted_aj <- aj
  out$coef_cause1 <- as.list(coef(event$models[[1]]))
  out$coef_cause2 <- as.list(coef(event$models[[2]]))
  out
}

# bone-marrow transplant data (Scrucca et al. 2007): treatment D (AML vs ALL), confounders Age, Sex
b <- read.csv("tests/data/bmtcrr.csv")
bmt <- data.frame(time = b$ftime, status = b$Status, A = factor(ifelse(b$D == "AML", "AML", "ALL")),
                  age = b$Age, male = as.numeric(b$Sex == "M"))
# simulated three-arm cohort (tests/data/make_ate_sim.py)
s <- read.csv("tests/data/ate_sim.csv")
sim <- data.frame(time = s$time, status = s$status, A = factor(s$arm, levels = c("none", "nsaid", "radiotherapy")),
                  age = s$age, male = s$male)

res <- list(
  versions = list(R = R.version.string, riskRegression = as.character(packageVersion("riskRegression")),
                  survival = as.character(packageVersion("survival"))),
  bmtcrr = c(list(horizon = 24), run(bmt, 24, FALSE)),
  sim = c(list(horizon = 365), run(sim, 365, TRUE)))
writeLines(toJSON(res, digits = NA, auto_unbox = TRUE, pretty = TRUE), "tests/reference/ate.json")
