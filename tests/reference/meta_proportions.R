# Reference values for hostats.stats.meta.proportions.meta_proportions (tests/stats/meta/test_meta_glmm.py
# and test_meta_proportions.py):
# * the binomial-normal GLMM (transform = "glmm"): lme4::glmer with 25-point adaptive Gauss-Hermite
#   quadrature gives mu, its SE and tau2; the full marginal log-likelihood at those estimates by
#   integrate() (binomial coefficients included; glmer's own logLik uses another constant); and
#   metafor::rma.glmm(measure = "PLO", method = "ML") for a homogeneous set where tau2 = 0;
# * the Freeman-Tukey double arcsine (metafor escalc "PFT", Miller 1978 page 138: metafor's yi is half
#   Miller's, and Miller's variance is 4 vi) and the equal-effects estimate back-transformed with the
#   harmonic mean of n (transf.ipft.hm), as metafor's test_analysis_example_miller1978.r.
# The study counts are typed in as in the test files.
# Run from the repository root:  Rscript tests/reference/meta_proportions.R   (writes tests/reference/meta_proportions.json)
suppressMessages({library(lme4); library(metafor); library(jsonlite)})
sets <- list(
  reproducer = list(x = c(0, 0, 21, 7, 10, 104, 13, 12, 6, 13, 19, 14, 13, 10, 6, 9, 10, 6, 13, 5, 28, 2, 32, 11,
                          51, 4, 14, 4, 5, 21),
                    n = c(149, 126, 159, 149, 143, 154, 144, 152, 130, 151, 171, 138, 147, 145, 148, 156, 158, 154,
                          156, 149, 137, 133, 152, 163, 157, 145, 153, 156, 168, 157)),
  zero_events = list(x = c(0, 1, 0, 4, 9, 2, 0), n = c(12, 30, 25, 28, 31, 40, 18)),
  zero_and_all_events = list(x = c(0, 4, 9, 16, 20), n = c(10, 10, 15, 20, 20)),
  homogeneous = list(x = c(10, 11, 9, 10, 12, 10), n = rep(100, 6)))

glmm <- function(s) {
  d <- data.frame(x = s$x, n = s$n, study = factor(seq_along(s$x)))
  f <- suppressMessages(glmer(cbind(x, n - x) ~ 1 + (1 | study), family = binomial, data = d, nAGQ = 25,
                              control = glmerControl(optimizer = "bobyqa", optCtrl = list(maxfun = 1e5))))
  mu <- unname(fixef(f)[1]); tau <- sqrt(VarCorr(f)$study[1])
  ll <- if (tau > 0) sum(log(mapply(function(x, n) integrate(function(u) dbinom(x, n, plogis(mu + u)) * dnorm(u, 0, tau),
                                                             -Inf, Inf, rel.tol = 1e-12)$value, s$x, s$n)))
        else sum(dbinom(s$x, s$n, plogis(mu), log = TRUE))
  list(x = s$x, n = s$n, mu = mu, std_error = sqrt(vcov(f)[1, 1]), tau2 = tau^2, loglik_integrate = ll)
}
out <- list(generated_by = "tests/reference/meta_proportions.R", r_version = R.version.string,
            lme4_version = as.character(packageVersion("lme4")),
            metafor_version = as.character(packageVersion("metafor")),
            glmer = list(r_call = 'glmer(cbind(x, n - x) ~ 1 + (1 | study), family = binomial, nAGQ = 25, control = glmerControl(optimizer = "bobyqa", optCtrl = list(maxfun = 1e5)))'))
for (nm in names(sets)) out$glmer[[nm]] <- glmm(sets[[nm]])
h <- sets$homogeneous
rg <- rma.glmm(measure = "PLO", xi = h$x, ni = h$n, method = "ML")
out$rma_glmm_homogeneous <- list(r_call = 'rma.glmm(measure = "PLO", xi = x, ni = n, method = "ML")',
                                 mu = unname(rg$beta[1]), std_error = rg$se, tau2 = rg$tau2,
                                 loglik = as.numeric(logLik(rg)))

mx <- c(3, 6, 10, 1); mn <- c(11, 17, 21, 6)
pft <- escalc(measure = "PFT", xi = mx, ni = mn)
ee <- rma(yi, vi, data = pft, method = "EE")
e <- sets$zero_and_all_events
pft2 <- escalc(measure = "PFT", xi = e$x, ni = e$n)
ee2 <- rma(yi, vi, data = pft2, method = "EE")
p2 <- predict(ee2, transf = transf.ipft.hm, targs = list(ni = e$n))
out$freeman_tukey <- list(
  r_call = 'escalc(measure = "PFT"); predict(rma(yi, vi, method = "EE"), transf = transf.ipft.hm, targs = list(ni = n))',
  miller_x = mx, miller_n = mn, miller_yi_times2 = 2 * as.numeric(pft$yi), miller_vi_times4 = 4 * as.numeric(pft$vi),
  miller_ee_estimate = predict(ee, transf = transf.ipft.hm, targs = list(ni = mn))$pred,
  edge_ee = list(estimate = p2$pred, ci_lower = p2$ci.lb, ci_upper = p2$ci.ub))
writeLines(toJSON(out, auto_unbox = TRUE, digits = NA, pretty = TRUE), "tests/reference/meta_proportions.json")
cat("wrote tests/reference/meta_proportions.json\n")
