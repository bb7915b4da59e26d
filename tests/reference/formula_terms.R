# Reference values for the formula terms of hostats.stats._formula (tests/stats/core/test_formula_terms.py):
# spline, polynomial and scaling terms and R's dotted column names, on survival::lung
# (tests/data/lung.csv, written by write.csv(survival::lung, na = "")), and bmtcrr for crr.
# Run from the repository root: Rscript tests/reference/formula_terms.R
# (R 4.2.2, survival 3.5-3, splines, mgcv, cmprsk, jsonlite); writes tests/reference/formula_terms.json.
library(survival)
library(splines)
library(mgcv)
library(jsonlite)
lung <- read.csv("tests/data/lung.csv")
lung$dead <- as.integer(lung$status == 2)
cc <- lung[!is.na(lung$wt.loss), ]  # rows with wt.loss (for the center/scale model)
glm_ref <- function(f, data) {
  m <- glm(f, family = binomial, data = data)
  list(coef = unname(coef(m)), se = unname(sqrt(diag(vcov(m)))), loglik = as.numeric(logLik(m)),
       n = nobs(m))
}
cox_ref <- function(f, data) {
  m <- coxph(f, data = data)
  list(coef = unname(coef(m)), se = unname(sqrt(diag(vcov(m)))), loglik = m$loglik, n = m$n)
}
out <- list(R = R.version.string, survival = as.character(packageVersion("survival")),
            mgcv = as.character(packageVersion("mgcv")))
# the bases themselves (first 6 rows of lung and their attributes)
b <- bs(lung$age, df = 4)
out$bs_age_df4 <- list(knots = unname(attr(b, "knots")), boundary = unname(attr(b, "Boundary.knots")),
                       head = unname(b[1:6, ]))
p <- poly(lung$age, 3)
out$poly_age_3 <- list(head = unname(p[1:6, ]))
n <- ns(lung$age, df = 4)
out$ns_age_df4 <- list(knots = unname(attr(n, "knots")), head = unname(n[1:6, ]))
# predict with new ages: the basis keeps the knots of the fitting data
out$bs_predict <- unname(predict(b, c(45, 60, 75)))
out$poly_predict <- unname(predict(p, c(45, 60, 75)))
# models
out$glm_bs <- glm_ref(dead ~ bs(age, df = 4), lung)
out$glm_bs_sex <- glm_ref(dead ~ bs(age, df = 4) + sex, lung)
m_bs <- glm(dead ~ bs(age, df = 4), family = binomial, data = lung)
out$glm_bs$predict <- unname(predict(m_bs, data.frame(age = c(45, 60, 75)), type = "response"))
out$glm_poly <- glm_ref(dead ~ poly(age, 3), lung)
out$glm_ns <- glm_ref(dead ~ ns(age, df = 4), lung)
out$glm_scale_center <- glm_ref(dead ~ scale(age) + I(wt.loss - mean(wt.loss)), cc)
out$cox_bs_sex <- cox_ref(Surv(time, status) ~ bs(age, df = 4) + sex, lung)
out$cox_ns_sex <- cox_ref(Surv(time, status) ~ ns(age, df = 4) + sex, lung)
out$cox_poly_sex <- cox_ref(Surv(time, status) ~ poly(age, 2) + sex, lung)
# dotted names (complete cases on the model's columns, as both R and hostats do)
out$cox_dotted <- cox_ref(Surv(time, status) ~ ph.ecog + ph.karno + pat.karno + meal.cal + wt.loss + sex,
                          lung)
out$cox_dotted_factor <- cox_ref(Surv(time, status) ~ factor(ph.ecog) + sex, lung)
out$glm_dotted <- glm_ref(dead ~ ph.ecog + ph.karno + pat.karno + meal.cal + wt.loss, lung)
out$glm_dotted_log <- glm_ref(dead ~ log(meal.cal) + wt.loss, lung)
# cr: mgcv's cubic regression spline basis (smoothCon, the sum-to-zero constraint absorbed), k = df + 1
# knots placed by mgcv (place.knots: evenly through the sorted unique values, as formulaic/patsy's cr)
sm <- smoothCon(s(age, bs = "cr", k = 5), data = lung, absorb.cons = TRUE)[[1]]
kn <- unname(sm$xp)
out$cr_age_df4 <- list(knots = kn, head = unname(sm$X[1:6, ]))
Xcr <- sm$X
out$glm_cr <- glm_ref(dead ~ Xcr, lung)
# the same curves as a natural cubic B-spline with those knots
out$glm_ns_cr_knots <- glm_ref(dead ~ ns(age, knots = kn[2:4], Boundary.knots = kn[c(1, 5)]), lung)
out$cox_cr_sex <- cox_ref(Surv(time, status) ~ Xcr + sex, lung)
# fine_gray: cmprsk::crr with a B-spline of age (bmtcrr, tests/data/bmtcrr.csv), covariates coded by
# model.matrix as hostats codes them (treatment contrasts, first level the reference)
library(cmprsk)
bmt <- read.csv("tests/data/bmtcrr.csv")
cov1 <- model.matrix(~ bs(Age, df = 4) + Sex, data = bmt)[, -1]
fg <- crr(bmt$ftime, bmt$Status, cov1 = cov1, failcode = 1, cencode = 0)
out$crr_bs_sex <- list(coef = unname(fg$coef), se = unname(sqrt(diag(fg$var))), loglik = fg$loglik)
# iptw: propensity glm(female ~ bs(age, df = 4) + ph.ecog), unstabilised ATE weights, weighted risks
ip <- lung[!is.na(lung$ph.ecog), ]
ip$female <- as.integer(ip$sex == 2)
ps <- fitted(glm(female ~ bs(age, df = 4) + ph.ecog, family = binomial, data = ip))
w <- ifelse(ip$female == 1, 1 / ps, 1 / (1 - ps))
out$iptw_bs <- list(ps_head = unname(ps[1:6]),
                    risk_treated = weighted.mean(ip$dead[ip$female == 1], w[ip$female == 1]),
                    risk_control = weighted.mean(ip$dead[ip$female == 0], w[ip$female == 0]))
write_json(out, "tests/reference/formula_terms.json", digits = NA, auto_unbox = TRUE, pretty = TRUE)
