# Reference values for interval_censored with R's interval2 conventions for missing bounds
# (tests/stats/survival/test_interval.py): NA upper bound = right-censored, NA lower bound = left-censored.
# Data: breast cosmesis deterioration (KMsurv::bcdeter, Klein & Moeschberger 2003, section 1.18; from
# Finkelstein 1986), written to tests/data/bcdeter.csv by this script (upper NA for the 37 women whose
# deterioration was not seen by their last visit; lower 0 for deterioration at the first visit).
# Run from the repository root: Rscript tests/reference/interval_na.R
# (R 4.2.2, survival 3.5-3, KMsurv 0.1-5, jsonlite); writes tests/reference/interval_na.json.
library(survival)
library(KMsurv)
library(jsonlite)
data(bcdeter)
write.csv(bcdeter, "tests/data/bcdeter.csv", row.names = FALSE, na = "")
d <- read.csv("tests/data/bcdeter.csv")
npmle <- function(data) {
  f <- survfit(Surv(lower, upper, type = "interval2") ~ 1, data = data)
  list(time = f$time, cdf = 1 - f$surv, n = f$n)
}
# survreg needs positive times: lower 0 coded NA (left-censored), the same likelihood
d_sr <- transform(d, lower = ifelse(lower == 0, NA, lower))
para <- function(data, dist) {
  m <- survreg(Surv(lower, upper, type = "interval2") ~ 1, data = data, dist = dist)
  list(intercept = unname(coef(m)), scale = m$scale, se_intercept = unname(sqrt(vcov(m)[1, 1])),
       loglik = m$loglik[1], aic = AIC(m), n = nrow(data),
       median = unname(predict(m, newdata = data.frame(x = 1), type = "quantile", p = 0.5)))
}
dropped <- d[!is.na(d$upper), ]  # what refusing NA upper bounds led users to do
out <- list(
  R = R.version.string, survival = as.character(packageVersion("survival")),
  n = nrow(d), n_upper_na = sum(is.na(d$upper)), n_lower_zero = sum(d$lower == 0),
  npmle = npmle(d),
  npmle_lower_na = npmle(d_sr),
  weibull = para(d_sr, "weibull"),
  lognormal = para(d_sr, "lognormal"),
  npmle_dropped = npmle(dropped),
  weibull_dropped = para(transform(dropped, lower = ifelse(lower == 0, NA, lower)), "weibull")
)
write_json(out, "tests/reference/interval_na.json", digits = NA, auto_unbox = TRUE, pretty = TRUE)
