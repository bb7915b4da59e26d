# Reference values for CoxResult.check_ph / ph_residuals (tests/stats/survival/test_survival_cox.py):
# R's survival::cox.zph (survival >= 3.0) with every transform, on survival::lung and on the Rossi
# recidivism data (lifelines.datasets.load_rossi, written to rossi.csv unchanged).
# Run from the repository root:  Rscript tests/reference/cox_zph.R /path/to/rossi.csv
# (R 4.2.2, survival 3.5-3, jsonlite); writes tests/reference/cox_zph.json.
library(survival)
library(jsonlite)
args <- commandArgs(trailingOnly = TRUE)
lung <- read.csv("tests/data/lung.csv")
rossi <- read.csv(args[1])
fits <- list(
  lung = coxph(Surv(time, status) ~ age + sex + ph.ecog, data = lung),
  rossi = coxph(Surv(week, arrest) ~ fin + age + race + wexp + mar + paro + prio, data = rossi),
  rossi_strata = coxph(Surv(week, arrest) ~ fin + age + prio + strata(wexp), data = rossi)
)
out <- list(R = R.version.string, survival = as.character(packageVersion("survival")))
for (nm in names(fits)) {
  f <- fits[[nm]]
  res <- list(coef = unname(coef(f)), loglik = f$loglik)
  for (tr in c("km", "identity", "log", "rank")) {
    z <- cox.zph(f, transform = tr)
    res[[tr]] <- list(term = rownames(z$table), chisq = unname(z$table[, "chisq"]),
                      df = unname(z$table[, "df"]), p = unname(z$table[, "p"]),
                      x_head = unname(head(z$x, 5)), x_tail = unname(tail(z$x, 5)),
                      y_head = unname(head(z$y, 3)))
  }
  out[[nm]] <- res
}
write_json(out, "tests/reference/cox_zph.json", digits = NA, auto_unbox = TRUE, pretty = TRUE)
