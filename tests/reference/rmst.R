# Reference values for hostats.rmst (tests/stats/survival/test_rmst.py): restricted mean survival time (RMST) and
# restricted mean time lost (RMTL) with standard errors from R's survival package.
# Run from the repository root:  Rscript tests/reference/rmst.R   (writes tests/reference/rmst.json)
# Made with R 4.2 and survival 3.5-3 (Debian r-cran-survival); jsonlite for the output.
#
# What each figure is:
# * Kaplan-Meier RMST/RMTL: print(survfit(Surv(time, event) ~ g), rmean = tau), i.e. survival:::survmean,
#   Greenwood-type variance sum_j A_j^2 d_j / (n_j (n_j - d_j)) (the variance survRM2::rmst2 uses too).
# * Aalen-Johansen (competing risks): multi-state survfit(Surv(time, factor(status)) ~ g, influence = TRUE)
#   printed with rmean = tau (survival:::survmean2): rmean of state (s0) = event-free RMST, of each event
#   state = RMTL of that cause; se(rmean) from the infinitesimal jackknife (influence) matrix.
# * Weighted fits (weights, id, robust = TRUE): survfit's robust (IJ) standard errors of the curves use the
#   weighted influence sqrt(sum_i (w_i U_i)^2), where U_i = x$influence[i, , ] is the derivative with respect
#   to case i's weight (checked below against x$std.err at every time). The RMST/RMTL standard error is the
#   same sum of squares of w_i * sum_j U_ij delta_j. NOTE: survival 3.5-3's print(..., rmean = tau)
#   (survmean2) sums the squared *unweighted* U_i for weighted fits, which is not invariant to rescaling the
#   weights and disagrees with survfit's own std.err; that figure is stored as "print_se" for the record
#   and is NOT what hostats matches.
suppressMessages({library(survival); library(jsonlite)})

lung <- read.csv("tests/data/lung.csv")
lung$event <- as.integer(lung$status == 2)          # status 1 censored, 2 dead
lung$w <- lung$age / 60                               # arbitrary positive non-integer weights (same in Python)
lung$id <- seq_len(nrow(lung))
bmt <- read.csv("tests/data/bmtcrr.csv")              # Status 0 censored, 1 relapse, 2 death
bmt$id <- seq_len(nrow(bmt))
bmt$fstatus <- factor(bmt$Status, 0:2, c("censor", "relapse", "death"))

# restricted mean of step curves P (times x states, right-continuous, no time-0 row) and its IJ SE from
# the influence array infl (n x times x states, time 0 omitted) with case weights w
restricted <- function(tt, P, infl, w, tau) {
  P <- as.matrix(P); keep <- tt <= tau
  widths <- diff(c(0, tt[keep], tau))
  est <- colSums(widths * rbind(c(1, rep(0, ncol(P) - 1)), P[keep, , drop = FALSE]))
  se <- sapply(seq_len(ncol(P)), function(s) {
    u <- matrix(infl[, , s], nrow = dim(infl)[1])[, keep, drop = FALSE] %*% widths[-1]
    sqrt(sum((w * u)^2))
  })
  list(estimate = unname(est), se = unname(se))
}

# multi-state (or two-state) survfit per stratum -> rows; checks the weighted-influence convention
ms_rows <- function(fit, data, groupvar, w, tau, states) {
  strata <- if (is.null(fit$strata)) rep("all", length(fit$time)) else rep(names(fit$strata), fit$strata)
  labels <- if (is.null(fit$strata)) "all" else sub(paste0("^", groupvar, "="), "", names(fit$strata))
  infl_list <- if (is.list(fit$influence)) fit$influence else list(fit$influence)
  pr <- summary(fit, rmean = tau)$table        # survmean2's print figures
  rows <- list()
  for (k in seq_along(labels)) {
    who <- strata == unique(strata)[k]
    tt <- fit$time[who]; P <- fit$pstate[who, , drop = FALSE]
    infl <- infl_list[[k]][, -1, , drop = FALSE]     # drop the time-0 slice
    wk <- if (is.null(groupvar)) w else w[data[[groupvar]] == labels[k]]
    # convention check: survfit's std.err of pstate = sqrt(sum (w U)^2) at every time
    for (s in seq_len(ncol(P))) {
      se_t <- sqrt(colSums((wk * matrix(infl[, , s], nrow = dim(infl)[1]))^2))
      stopifnot(max(abs(se_t - fit$std.err[who, s])) < 1e-8)
    }
    r <- restricted(tt, P, infl, wk, tau)
    prk <- if (is.null(fit$strata)) pr else pr[grepl(paste0("^", groupvar, "=", labels[k], ","), rownames(pr)), ]
    for (s in seq_along(states)) {
      if (is.na(states[s])) next
      rows[[length(rows) + 1]] <- list(group = labels[k], measure = states[s], estimate = r$estimate[s],
                                        std_error = r$se[s], print_rmean = unname(prk[s, "rmean"]),
                                        print_se = unname(prk[s, "se(rmean)"]))
    }
  }
  rows
}

km_rows <- function(fit, groupvar, tau) {
  m <- survival:::survmean(fit, rmean = tau)$matrix
  if (is.null(dim(m))) m <- matrix(m, nrow = 1, dimnames = list("all", names(m)))
  labels <- if (is.null(fit$strata)) "all" else sub(paste0("^", groupvar, "="), "", rownames(m))
  rows <- list()
  for (k in seq_along(labels)) {
    rows[[length(rows) + 1]] <- list(group = labels[k], measure = "rmst", estimate = unname(m[k, "rmean"]),
                                      std_error = unname(m[k, "se(rmean)"]))
    rows[[length(rows) + 1]] <- list(group = labels[k], measure = "rmtl", estimate = tau - unname(m[k, "rmean"]),
                                      std_error = unname(m[k, "se(rmean)"]))
  }
  rows
}

cases <- list()
add <- function(name, data, time, status, cause, group, weights, tau, rows, call) {
  cases[[name]] <<- list(data = data, time = time, status = status, cause = cause, group = group,
                          weights = weights, tau = tau, rows = rows, r_call = call)
}

# 1-3 Kaplan-Meier, unweighted (Greenwood-type SE of survmean)
for (tau in c(365, 730)) {
  f <- survfit(Surv(time, event) ~ sex, data = lung)
  add(paste0("lung_km_sex_", tau), "lung", "time", "event", NULL, "sex", NULL, tau, km_rows(f, "sex", tau),
      sprintf("survival:::survmean(survfit(Surv(time, event) ~ sex, data = lung), rmean = %g)", tau))
}
f <- survfit(Surv(time, event) ~ 1, data = lung)
add("lung_km_all_500", "lung", "time", "event", NULL, NULL, NULL, 500, km_rows(f, NULL, 500),
    "survival:::survmean(survfit(Surv(time, event) ~ 1, data = lung), rmean = 500)")

# 4 Kaplan-Meier, weighted w = age / 60, robust IJ (two-state multi-state fit: (s0) = survival)
lung$fevent <- factor(lung$event, 0:1, c("censor", "death"))
f <- survfit(Surv(time, fevent) ~ sex, data = lung, weights = w, id = id, robust = TRUE, influence = TRUE)
add("lung_km_sex_weighted_365", "lung", "time", "event", NULL, "sex", "w", 365,
    ms_rows(f, lung, "sex", lung$w, 365, c("rmst", "rmtl")),
    "survfit(Surv(time, factor(event)) ~ sex, data = lung, weights = age/60, id = id, robust = TRUE, influence = TRUE)")
# cross-check: the single-state KM fit's influence.surv (already multiplied by the weights) gives the same SE
fk <- survfit(Surv(time, event) ~ sex, data = lung, weights = w, id = id, robust = TRUE, influence = TRUE)
for (k in 1:2) {
  who <- rep(1:2, fk$strata) == k; tt <- fk$time[who]; keep <- tt <= 365
  widths <- diff(c(0, tt[keep], 365))
  se <- sqrt(sum((fk$influence.surv[[k]][, keep] %*% widths[-1])^2))
  stopifnot(abs(se - cases$lung_km_sex_weighted_365$rows[[2 * k - 1]]$std_error) < 1e-8)
}

# 5-6 Aalen-Johansen, competing risks, unweighted (IJ)
for (tau in c(24, 60)) {
  f <- survfit(Surv(ftime, fstatus) ~ D, data = bmt, influence = TRUE)
  add(paste0("bmtcrr_aj_D_", tau), "bmtcrr", "ftime", "Status", 1, "D", NULL, tau,
      ms_rows(f, bmt, "D", rep(1, nrow(bmt)), tau, c("rmst", "rmtl", "rmtl_competing")),
      sprintf("print(survfit(Surv(ftime, factor(Status)) ~ D, data = bmtcrr, influence = TRUE), rmean = %g)", tau))
}
f <- survfit(Surv(ftime, fstatus) ~ 1, data = bmt, influence = TRUE)
add("bmtcrr_aj_all_36", "bmtcrr", "ftime", "Status", 1, NULL, NULL, 36,
    ms_rows(f, bmt, NULL, rep(1, nrow(bmt)), 36, c("rmst", "rmtl", "rmtl_competing")),
    "print(survfit(Surv(ftime, factor(Status)) ~ 1, data = bmtcrr, influence = TRUE), rmean = 36)")
# cause 2 (death) as the cause of interest: the states swap roles
f <- survfit(Surv(ftime, fstatus) ~ Sex, data = bmt, influence = TRUE)
add("bmtcrr_aj_Sex_cause2_48", "bmtcrr", "ftime", "Status", 2, "Sex", NULL, 48,
    ms_rows(f, bmt, "Sex", rep(1, nrow(bmt)), 48, c("rmst", "rmtl_competing", "rmtl")),
    "print(survfit(Surv(ftime, factor(Status)) ~ Sex, data = bmtcrr, influence = TRUE), rmean = 48)")

# 7-8 IPTW: treatment D (AML vs ALL), propensity glm(D == "AML" ~ Age + Sex), stabilised ATE weights
ps <- fitted(glm(I(D == "AML") ~ Age + Sex, family = binomial, data = bmt))
aml <- bmt$D == "AML"
bmt$w <- ifelse(aml, mean(aml) / ps, mean(!aml) / (1 - ps))
f <- survfit(Surv(ftime, fstatus) ~ D, data = bmt, weights = w, id = id, robust = TRUE, influence = TRUE)
add("bmtcrr_iptw_aj_D_24", "bmtcrr", "ftime", "Status", 1, "D", "iptw", 24,
    ms_rows(f, bmt, "D", bmt$w, 24, c("rmst", "rmtl", "rmtl_competing")),
    "survfit(Surv(ftime, factor(Status)) ~ D, weights = w, id = id, robust = TRUE, influence = TRUE); w stabilised ATE from glm(D=='AML' ~ Age + Sex)")
bmt$frelapse <- factor(as.integer(bmt$Status == 1), 0:1, c("censor", "relapse"))
f <- survfit(Surv(ftime, frelapse) ~ D, data = bmt, weights = w, id = id, robust = TRUE, influence = TRUE)
add("bmtcrr_iptw_km_D_24", "bmtcrr", "ftime", "relapse", NULL, "D", "iptw", 24,
    ms_rows(f, bmt, "D", bmt$w, 24, c("rmst", "rmtl")),
    "relapse-free KM (deaths censored), same weights: survfit(Surv(ftime, Status == 1) ~ D, weights = w, id = id, robust = TRUE, influence = TRUE)")

out <- list(generated_by = "tests/reference/rmst.R",
            r_version = R.version.string, survival_version = as.character(packageVersion("survival")),
            iptw_weights_bmtcrr = unname(bmt$w), cases = cases)
writeLines(toJSON(out, auto_unbox = TRUE, digits = NA, pretty = TRUE, null = "null"), "tests/reference/rmst.json")
cat("wrote tests/reference/rmst.json with", length(cases), "cases\n")
