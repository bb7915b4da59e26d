"""The shared core of the estimators: every family imports from here, and nothing here imports a family.

- ``results``: the result contract (``Result``, ``CurveResult``, ``GroupTest``, ``LogLik``; tidy tables).
- ``validate``: input checks and the one missing-data rule (``complete_cases``).
- ``survival_data``: time-to-event input checks, covariate matrices of hazard models, the score chi-square.
- ``formula``: the one formula engine (formulaic design matrices).
- ``cox_efron``: risk-set sums and Newton-Raphson of the Cox partial likelihood with Efron ties.
- ``censoring_weights``: the censoring Kaplan-Meier and its influence term (IPCW).

Nothing is imported here, so that importing one core module never loads the others.
"""
