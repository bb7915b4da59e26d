# Reference values for the R-computed figures among the incidence and result-contract tests:
# * hostats.stats.incidence.rate rate ratio (tests/stats/test_incidence.py): stats::poisson.test on the
#   example of its help page (breast cancer rates, Rothman & Greenland 1998), the exact conditional test
#   and interval (R's binom.test on the split of the events);
# * the hazard ratio of age in the common result-contract test (tests/stats/core/test_result_contract.py):
#   survival::coxph(Surv(time, status) ~ age + sex) on survival::lung (tests/data/lung.csv), Efron ties.
# The proportion and Poisson-limit tables (Newcombe 1998; Garwood 1936) stay in the test as published.
# Run from the repository root:  Rscript tests/reference/incidence.R   (writes tests/reference/incidence.json)
suppressMessages({library(survival); library(jsonlite)})
pt <- poisson.test(c(11, 6 + 8 + 7), c(800, 1083 + 1050 + 878))
lung <- read.csv("tests/data/lung.csv")
f <- coxph(Surv(time, status) ~ age + sex, data = lung)
out <- list(generated_by = "tests/reference/incidence.R", r_version = R.version.string,
            survival_version = as.character(packageVersion("survival")),
            poisson_test = list(r_call = "poisson.test(c(11, 6 + 8 + 7), c(800, 1083 + 1050 + 878))",
                                estimate = unname(pt$estimate), ci_lower = pt$conf.int[1], ci_upper = pt$conf.int[2],
                                p_value = pt$p.value),
            lung_cox_age_sex = list(r_call = "coxph(Surv(time, status) ~ age + sex, data = lung)",
                                    term = names(coef(f)), coef = unname(coef(f)),
                                    std_error = unname(sqrt(diag(vcov(f))))))
writeLines(toJSON(out, auto_unbox = TRUE, digits = NA, pretty = TRUE), "tests/reference/incidence.json")
cat("wrote tests/reference/incidence.json\n")
