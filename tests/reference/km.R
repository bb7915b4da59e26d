# Reference values for hostats.stats.survival.km_cox.kaplan_meier (tests/stats/survival/test_survival_km.py):
# Kaplan-Meier curves with log-log limits, medians and the log-rank test from R's survival package.
# Run from the repository root:  Rscript tests/reference/km.R   (writes tests/reference/km.json)
# Data: survival::aml (Miller 1981; the test's AML frame is the same 23 rows, checked below) and
# tests/data/bmtcrr.csv (Scrucca et al. 2007).
suppressMessages({library(survival); library(jsonlite)})

# the test's AML frame, typed in; must equal survival::aml
aml_test <- data.frame(
  time = c(9, 13, 13, 18, 23, 28, 31, 34, 45, 48, 161, 5, 5, 8, 8, 12, 16, 23, 27, 30, 33, 43, 45),
  status = c(1, 1, 0, 1, 1, 0, 1, 1, 0, 1, 0, 1, 1, 1, 1, 1, 0, 1, 1, 1, 1, 1, 1),
  x = rep(c("Maintained", "Nonmaintained"), c(11, 12)))
stopifnot(all(aml_test$time == aml$time), all(aml_test$status == aml$status),
          all(aml_test$x == as.character(aml$x)))

# 1 curve: summary(survfit(..., conf.type = "log-log")) at the event times
fit <- survfit(Surv(time, status) ~ x, data = aml, conf.type = "log-log")
s <- summary(fit)
curve <- list(group = sub("^x=", "", as.character(s$strata)), time = s$time, n_at_risk = s$n.risk,
              estimate = s$surv, ci_lower = s$lower, ci_upper = s$upper)
keep <- s$surv > 0                     # R's limits are NA at S = 0
curve <- lapply(curve, function(v) v[keep])
med <- summary(fit)$table
sd <- survdiff(Surv(time, status) ~ x, data = aml)
at <- summary(fit, times = c(10, 20, 30))

# 2 weighted point estimate: weights from set.seed(1); round(runif(23, 0.5, 3), 3)
set.seed(1); w <- round(runif(23, 0.5, 3), 3)
fw <- survfit(Surv(time, status) ~ x, data = cbind(aml, w = w), weights = w)

# 3 bmtcrr: four-group log-rank (relapse) and medians of any event by Phase
bmt <- read.csv("tests/data/bmtcrr.csv")
sd4 <- survdiff(Surv(ftime, Status == 1) ~ Phase, data = bmt)
f4 <- survfit(Surv(ftime, Status > 0) ~ Phase, data = bmt, conf.type = "log-log")
t4 <- summary(f4)$table

out <- list(
  generated_by = "tests/reference/km.R", r_version = R.version.string,
  survival_version = as.character(packageVersion("survival")),
  aml = list(
    r_call = 'survfit(Surv(time, status) ~ x, data = aml, conf.type = "log-log"); survdiff(Surv(time, status) ~ x, data = aml)',
    curve = curve,
    median = list(group = sub("^x=", "", rownames(med)), estimate = unname(med[, "median"]),
                  ci_lower = unname(med[, "0.95LCL"]), ci_upper = unname(med[, "0.95UCL"]),
                  n = unname(med[, "records"]), events = unname(med[, "events"])),
    logrank = list(chisq = unname(sd$chisq), df = length(sd$n) - 1,
                   p_value = pchisq(sd$chisq, length(sd$n) - 1, lower.tail = FALSE)),
    at_10_20_30 = list(group = sub("^x=", "", as.character(at$strata)), time = at$time,
                       n_at_risk = at$n.risk, estimate = at$surv, ci_lower = at$lower, ci_upper = at$upper)),
  aml_weighted = list(
    r_call = "survfit(Surv(time, status) ~ x, data = aml, weights = w); set.seed(1); w <- round(runif(23, 0.5, 3), 3)",
    weights = w, time = fw$time[fw$n.event > 0], estimate = fw$surv[fw$n.event > 0]),  # event times
  bmtcrr = list(
    r_call = 'survdiff(Surv(ftime, Status == 1) ~ Phase); survfit(Surv(ftime, Status > 0) ~ Phase, conf.type = "log-log")',
    logrank_chisq = unname(sd4$chisq), logrank_df = length(sd4$n) - 1, logrank_expected = unname(sd4$exp),
    group = sub("^Phase=", "", rownames(t4)), median = unname(t4[, "median"]),
    median_ci_lower = unname(t4[, "0.95LCL"]), median_ci_upper = unname(t4[, "0.95UCL"]),
    events = unname(t4[, "events"])))
writeLines(toJSON(out, auto_unbox = TRUE, digits = NA, pretty = TRUE, na = "null"), "tests/reference/km.json")
cat("wrote tests/reference/km.json\n")
