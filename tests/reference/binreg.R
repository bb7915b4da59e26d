# Reference values for hostats.binreg (tests/stats/regression/test_binreg.py). Run from the repository root:
#   Rscript tests/reference/binreg.R      (R 4.2, mets 1.3.2, survival 3.5-3)
# writes tests/reference/binreg.json and (once) tests/data/mets_bmt.csv. mets::binreg is the direct
# binomial regression of Scheike, Zhang & Gerds (2008): logit P(T <= time, cause | X) = X'beta, IPCW
# estimating equation with the censoring Kaplan-Meier (cens.model = ~1, or stratified:
# ~strata(...)); robust SEs from the influence functions including the censoring term (se.coef), and
# naive SEs treating the weights as known (naive.var). For each fit: coef, se, naive_se, the
# censoring weights G used per subject and (for three fits) the influence functions (iid, n x p).
# Convention at tied times: mets 1.3.2 weights an event at T by G(T) (censorings at T counted first);
# hostats by G(T-) (events first, as survfit/prodlim's reverse Kaplan-Meier evaluated at T-). The two
# agree when no censoring shares an event's time (bmtcrr before the horizons used here). For the tied
# mets data the script also refits with G(T-) from survfit passed as cens.weights (coef only: mets then
# gives no robust SE) and on a copy whose censoring times are moved 1e-6 later (ties broken the way
# hostats orders them; the data and both conventions then agree exactly).
suppressMessages({library(mets); library(survival); library(jsonlite)})

fit <- function(formula, data, time, cause, cens.model = ~1, iid = FALSE) {
  b <- binreg(formula, data, time = time, cause = cause, cens.model = cens.model)
  list(terms = names(b$coef), coef = unname(b$coef), se = unname(b$se.coef),
       naive_se = unname(sqrt(diag(b$naive.var))), n = b$n, nevent = b$nevent,
       cens_weights = unname(c(b$cens.weights)), iid = if (iid) unname(b$iid))
}

# G(u-) per subject from survfit's Kaplan-Meier of the censoring times, within strata
gminus <- function(time, cstatus, u, strata = rep(1, length(time))) {
  out <- numeric(length(u))
  for (k in unique(strata)) {
    i <- strata == k
    sf <- survfit(Surv(time[i], cstatus[i]) ~ 1)
    out[i] <- stepfun(sf$time, c(1, sf$surv), right = TRUE)(u[i])   # right = TRUE: left limit
  }
  out
}
fit_tminus <- function(formula, data, time, cause, strata = rep(1, nrow(data))) {
  w <- gminus(data$time, data$cause == 0, pmin(data$time, time), strata)
  b <- binreg(formula, data, time = time, cause = cause, cens.weights = w)
  list(terms = names(b$coef), coef = unname(b$coef), naive_se = unname(sqrt(diag(b$naive.var))),
       cens_weights = w)
}

bmtcrr <- read.csv("tests/data/bmtcrr.csv")
out <- list(
  versions = list(R = R.version.string, mets = as.character(packageVersion("mets")),
                  survival = as.character(packageVersion("survival"))),
  bmtcrr_24 = fit(Event(ftime, Status) ~ Age + Sex + D + Phase, bmtcrr, 24, 1, iid = TRUE),
  bmtcrr_24_strataD = fit(Event(ftime, Status) ~ Age + Sex + D + Phase, bmtcrr, 24, 1, ~strata(D), iid = TRUE),
  bmtcrr_12_cause2 = fit(Event(ftime, Status) ~ Age + D, bmtcrr, 12, 2)
)

data(bmt, package = "mets")   # 408 patients after bone-marrow transplant (mets' binreg example)
if (!file.exists("tests/data/mets_bmt.csv")) write.csv(bmt, "tests/data/mets_bmt.csv", row.names = FALSE)
bmt <- read.csv("tests/data/mets_bmt.csv")
out$mets_bmt_50 <- fit(Event(time, cause) ~ tcell + platelet + age, bmt, 50, 1)
out$mets_bmt_50_strata <- fit(Event(time, cause) ~ tcell + platelet + age, bmt, 50, 1,
                              ~strata(tcell, platelet))
out$mets_bmt_30_cause2 <- fit(Event(time, cause) ~ tcell + platelet + age, bmt, 30, 2)
out$mets_bmt_50_tminus <- fit_tminus(Event(time, cause) ~ tcell + platelet + age, bmt, 50, 1)
out$mets_bmt_50_strata_tminus <- fit_tminus(Event(time, cause) ~ tcell + platelet + age, bmt, 50, 1,
                                            interaction(bmt$tcell, bmt$platelet))
shifted <- bmt
shifted$time <- ifelse(shifted$cause == 0, shifted$time + 1e-6, shifted$time)
out$mets_bmt_50_shifted <- fit(Event(time, cause) ~ tcell + platelet + age, shifted, 50, 1)
out$mets_bmt_50_strata_shifted <- fit(Event(time, cause) ~ tcell + platelet + age, shifted, 50, 1,
                                      ~strata(tcell, platelet), iid = TRUE)

writeLines(toJSON(out, digits = NA, auto_unbox = TRUE, matrix = "rowmajor"), "tests/reference/binreg.json")
for (k in setdiff(names(out), "versions")) {
  cat(k, "\n"); print(cbind(coef = out[[k]]$coef, se = if (is.null(out[[k]]$se)) NA else out[[k]]$se,
                            naive = out[[k]]$naive_se))
}
