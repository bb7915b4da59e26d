# Reference values for hostats.stats.competing.cif_fine_gray (tests/stats/competing/test_competing.py and
# test_fine_gray.py): Aalen-Johansen cumulative incidence with cmprsk's variances, Gray's test
# (cmprsk::cuminc, timepoints) and Fine-Gray subdistribution hazards regression (cmprsk::crr).
# Data: tests/data/bmtcrr.csv (Scrucca et al. 2007, 2010) and the 90-row heavily tied data set the tests
# build by arithmetic (tied_data() in test_competing.py), rebuilt here the same way.
# Run from the repository root:  Rscript tests/reference/competing.R   (writes tests/reference/competing.json)
suppressMessages({library(cmprsk); library(jsonlite)})
bmt <- read.csv("tests/data/bmtcrr.csv")
i <- 0:89
# (R's %% binds tighter than *: the parentheses give Python's (i * 7) % 13)
tied <- data.frame(t = ((i * 7) %% 13) + 1, s = ((i * 5) %% 7) %% 3, x1 = ((i * 5) %% 11) / 10, x2 = i %% 2,
                   g = ifelse(i %% 3 == 0, "a", "b"))

# cuminc -> {group: {cause: {est, var}}} at `times`, and Gray's tests
cif <- function(time, status, group, times) {
  f <- cuminc(time, status, group)
  tp <- timepoints(f, times)
  curves <- list()
  for (nm in rownames(tp$est)) {
    parts <- strsplit(nm, " ")[[1]]; cause <- parts[length(parts)]; grp <- paste(parts[-length(parts)], collapse = " ")
    curves[[length(curves) + 1]] <- list(group = grp, cause = as.integer(cause),
                                         est = unname(tp$est[nm, ]), var = unname(tp$var[nm, ]))
  }
  tests <- lapply(seq_len(nrow(f$Tests)), function(k)
    list(cause = as.integer(rownames(f$Tests)[k]), statistic = unname(f$Tests[k, "stat"]),
         p_value = unname(f$Tests[k, "pv"]), df = unname(f$Tests[k, "df"])))
  list(times = times, curves = curves, gray = tests)
}

crr_out <- function(m, cov) {
  s <- summary(m)
  list(term = colnames(cov), coef = unname(m$coef), std_error = unname(sqrt(diag(m$var))),
       ci_lower = unname(s$conf.int[, "2.5%"]), ci_upper = unname(s$conf.int[, "97.5%"]),
       p_value = unname(2 * pnorm(-abs(m$coef / sqrt(diag(m$var))))), loglik = m$loglik, loglik_null = m$loglik.null)
}
# integer-coded covariates as published (Sex F=1/M=2, D ALL=1/AML=2, Phase 1..4, Age, Source BM+PB=1/PB=2)
int_cov <- cbind(Sex = (bmt$Sex == "M") + 1, D = (bmt$D == "AML") + 1,
                 Phase = match(bmt$Phase, c("CR1", "CR2", "CR3", "Relapse")), Age = bmt$Age,
                 Source = (bmt$Source == "PB") + 1)
fac_cov <- model.matrix(~ Age + Sex + D + Phase + Source, data = bmt)[, -1]
tied_cov <- as.matrix(tied[, c("x1", "x2")])

out <- list(
  generated_by = "tests/reference/competing.R", r_version = R.version.string,
  cmprsk_version = as.character(packageVersion("cmprsk")),
  cuminc_bmtcrr_D = c(list(r_call = "timepoints(cuminc(ftime, Status, D), c(20, 40, 60))"),
                      cif(bmt$ftime, bmt$Status, bmt$D, c(20, 40, 60))),
  cuminc_bmtcrr_Phase = c(list(r_call = "cuminc(ftime, Status, Phase)$Tests"),
                          cif(bmt$ftime, bmt$Status, bmt$Phase, c(20, 40, 60))),
  cuminc_tied = c(list(r_call = "timepoints(cuminc(t, s, g), c(3, 7, 12)) on tied_data()"),
                  cif(tied$t, tied$s, tied$g, c(3, 7, 12))),
  crr_bmtcrr_integer = c(list(r_call = "crr(ftime, Status, cbind(Sex, D, Phase, Age, Source) integer-coded, failcode = 1)"),
                         crr_out(crr(bmt$ftime, bmt$Status, int_cov, failcode = 1), int_cov)),
  crr_bmtcrr_factor = c(list(r_call = "crr(ftime, Status, model.matrix(~ Age + Sex + D + Phase + Source)[, -1])"),
                        crr_out(crr(bmt$ftime, bmt$Status, fac_cov, failcode = 1), fac_cov)),
  crr_tied = c(list(r_call = 'crr(t, s, as.matrix(d[, c("x1", "x2")])) on tied_data()'),
               crr_out(crr(tied$t, tied$s, tied_cov), tied_cov)))
writeLines(toJSON(out, auto_unbox = TRUE, digits = NA, pretty = TRUE), "tests/reference/competing.json")
cat("wrote tests/reference/competing.json\n")
