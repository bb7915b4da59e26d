# Reference values for hostats.stats.survival.interval_censoring.interval_censored
# (tests/stats/survival/test_interval.py): the Turnbull NPMLE (survfit) and the log-normal and Weibull
# fits (survreg) of R's survival package on the interval-censored diabetes data shipped with lifelines
# (lifelines.datasets.load_diabetes, 731 rows, written unchanged to CSV). Run from the repository root:
#   python -c "from lifelines.datasets import load_diabetes; load_diabetes().to_csv('/tmp/diabetes.csv', index=False)"
#   Rscript tests/reference/interval.R /tmp/diabetes.csv      (writes tests/reference/interval.json)
suppressMessages({library(survival); library(jsonlite)})
args <- commandArgs(trailingOnly = TRUE)
d <- read.csv(args[1])
stopifnot(nrow(d) == 731, all(c("left", "right") %in% names(d)))

fit <- survfit(Surv(left, right, type = "interval2") ~ 1, data = d)
times <- c(2, 5, 9, 12, 15, 16, 20, 25, 30, 34, 40, 44)
s <- summary(fit, times = times, extend = TRUE)

# survreg needs left = 0 coded NA (left-censored): the same likelihood
d$left0 <- ifelse(d$left > 0, d$left, NA)
reg <- function(dist) {
  f <- survreg(Surv(left0, right, type = "interval2") ~ 1, data = d, dist = dist)
  list(intercept = unname(coef(f)), scale = f$scale, se_intercept = sqrt(vcov(f)[1, 1]), aic = AIC(f))
}

out <- list(generated_by = "tests/reference/interval.R", r_version = R.version.string,
            survival_version = as.character(packageVersion("survival")),
            npmle = list(r_call = 'survfit(Surv(left, right, type = "interval2") ~ 1, data = diabetes); 1 - summary(fit, times)$surv',
                         time = s$time, cdf = 1 - s$surv),
            survreg = list(r_call = 'survreg(Surv(left0, right, type = "interval2") ~ 1, dist = d), left0 = left with 0 as NA',
                           lognormal = reg("lognormal"), weibull = reg("weibull")))
writeLines(toJSON(out, auto_unbox = TRUE, digits = NA, pretty = TRUE), "tests/reference/interval.json")
cat("wrote tests/reference/interval.json\n")
