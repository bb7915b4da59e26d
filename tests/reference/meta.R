# Reference values for hostats.stats.meta.meta_effects (tests/stats/meta/test_meta.py): inverse-variance
# meta-analysis with R's metafor: fixed effect, DerSimonian-Laird, REML (with Knapp-Hartung), Paule-Mandel,
# Q-profile intervals of tau2/I2/H2 (confint), leave1out and study weights, on the 13 BCG vaccine trials
# (tests/data/dat_bcg.csv = metafor's dat.bcg, checked below; log risk ratios as escalc(measure = "RR")),
# and the Kacker (2004) example of statsmodels' meta-analysis tests (control tol 1e-9, as there).
# Run from the repository root:  Rscript tests/reference/meta.R   (writes tests/reference/meta.json)
suppressMessages({library(metafor); library(jsonlite)})
bcg <- read.csv("tests/data/dat_bcg.csv")
stopifnot(all(bcg[, c("tpos", "tneg", "cpos", "cneg")] == dat.bcg[, c("tpos", "tneg", "cpos", "cneg")]))
dat <- escalc(measure = "RR", ai = tpos, bi = tneg, ci = cpos, di = cneg, data = bcg)

pooled <- function(m) list(estimate = unname(m$beta[1]), std_error = m$se, z = m$zval, p_value = m$pval,
                           ci_lower = m$ci.lb, ci_upper = m$ci.ub, tau2 = m$tau2, q = m$QE, q_pvalue = m$QEp,
                           i2 = m$I2, h2 = m$H2)
fe <- rma(yi, vi, data = dat, method = "FE")
dl <- rma(yi, vi, data = dat, method = "DL")
reml <- rma(yi, vi, data = dat)
kh <- rma(yi, vi, data = dat, test = "knha")
pm <- rma(yi, vi, data = dat, method = "PM")
ci <- confint(dl)$random
loo <- leave1out(reml)

y <- c(61.0, 61.4, 62.21, 62.3, 62.34, 62.6, 62.7, 62.84, 65.9)
v <- c(0.2025, 1.2100, 0.0900, 0.2025, 0.3844, 0.5625, 0.0676, 0.0225, 1.8225)
ctl <- list(tol = 1e-9)

out <- list(
  generated_by = "tests/reference/meta.R", r_version = R.version.string,
  metafor_version = as.character(packageVersion("metafor")),
  bcg = list(
    r_call = 'rma(yi, vi, data = escalc(measure = "RR", ai = tpos, bi = tneg, ci = cpos, di = cneg, data = dat.bcg), method = ...)',
    fe = pooled(fe), dl = pooled(dl), reml = pooled(reml), reml_knha = pooled(kh), pm = pooled(pm),
    dl_confint = list(tau2 = unname(ci["tau^2", ]), i2 = unname(ci["I^2(%)", ]), h2 = unname(ci["H^2", ])),
    reml_leave1out_first = list(estimate = loo$estimate[1], std_error = loo$se[1], ci_lower = loo$ci.lb[1],
                                ci_upper = loo$ci.ub[1], p_value = loo$pval[1], q = loo$Q[1], q_pvalue = loo$Qp[1],
                                tau2 = loo$tau2[1], i2 = loo$I2[1], h2 = loo$H2[1]),
    reml_weight_percent_first = unname(weights(reml)[1])),
  kacker = list(
    r_call = "rma(y, v, method = ..., test = ..., control = list(tol = 1e-9)) on the Kacker (2004) example",
    y = y, v = v,
    pm = pooled(rma(y, v, method = "PM", control = ctl)), dl = pooled(rma(y, v, method = "DL", control = ctl)),
    dl_knha = pooled(rma(y, v, method = "DL", test = "knha", control = ctl)),
    fe = pooled(rma(y, v, method = "FE", control = ctl))))
writeLines(toJSON(out, auto_unbox = TRUE, digits = NA, pretty = TRUE), "tests/reference/meta.json")
cat("wrote tests/reference/meta.json\n")
