"""A small synthetic OMOP CDM with known truth, for testing the OMOP road of hostats.

Independent of hostats (numpy, pandas and the standard library only): the codes below are written from
the coding systems themselves (ICD-10-CM, ICD-10-PCS, CPT-4, ATC, LOINC), not read from hostats' concept
sets, so a wrong concept set makes the tests fail instead of agreeing with itself.

    from synthetic import omop
    cdm = omop.generate(n=2000, seed=1)
    cdm.tables["person"]; cdm.truth            # CDM tables (DataFrames) and the per-person truth
    cdm.write("cdm/")                          # one CSV per table + truth.csv + truth.json

What each person gets (all dates inside 2015-2024):

* an observation period; a first index event of one of tha, hip_revision, long_bone_fracture, sci, tbi,
  stroke, burn (or none), coded in the source vocabulary (ICD-10-CM condition or CPT-4/ICD-10-PCS procedure)
  and mapped to a standard concept; some fractures and HO diagnoses carry only the standard concept
  (source concept 0), as records from other coding systems do. A few index events lie before the
  observation period (such persons have no episode), and some persons get a second, later index event
  (the first stays the index).
* prophylaxis around a THA or revision: radiotherapy (a CPT-4 delivery code on day 0 or 1), an NSAID
  (indomethacin, ibuprofen or celecoxib from day 0 to 2, coded as a clinical drug or an ingredient under the
  ATC class), a bisphosphonate (from day 0 to 10), or radiotherapy plus an NSAID; after other index events
  NSAIDs or bisphosphonates. Decoy NSAID courses start half a year after the index event.
* HO with a probability by prophylaxis arm, on a day drawn from 20-180 days, observed only within
  follow-up; prior HO (before the index) in some; decoy diagnoses that are not HO (M61.4, calcification
  of muscle; M61.1, fibrodysplasia ossificans progressiva).
* death for some (then follow-up ends at death); ALP measurements on days 0, 30 and 90 within follow-up
  (and one before the index, which is not an assessment of the episode).

``truth`` holds, per person, what a correct cohort definition must find (in_cohort, index_event,
index_date, prophylaxis, nsaid_agent, prior_ho, ho, ho_date, death_date, last_followup_date, sex,
year_of_birth, n_alp); ``parameters`` the probabilities used, so that rates can be checked too.
"""
from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

INDEX_EVENTS = ("tha", "hip_revision", "long_bone_fracture", "sci", "tbi", "stroke", "burn")
PARAMETERS: dict[str, Any] = {
    "index_probabilities": {"tha": 0.42, "hip_revision": 0.05, "long_bone_fracture": 0.15, "sci": 0.08,
                            "tbi": 0.08, "stroke": 0.08, "burn": 0.06, "none": 0.08},
    "index_before_observation": 0.03,       # the index event lies before the observation period
    "second_index_event": 0.10,              # a later, second qualifying event
    "prophylaxis_after_arthroplasty": {"none": 0.40, "radiotherapy": 0.20, "nsaid": 0.25, "bisphosphonate": 0.05,
                                       "radiotherapy_nsaid": 0.10},
    "prophylaxis_otherwise": {"none": 0.70, "nsaid": 0.20, "bisphosphonate": 0.10},
    "nsaid_agents": {"indomethacin": 0.6, "ibuprofen": 0.3, "other": 0.1},
    "ho_probability": {"none": 0.30, "radiotherapy": 0.12, "nsaid": 0.15, "bisphosphonate": 0.20,
                       "radiotherapy_nsaid": 0.08},
    "ho_day_range": [20, 180],
    "prior_ho": 0.05,
    "decoy_not_ho": 0.05,
    "decoy_late_nsaid": 0.10,
    "death": 0.06,
    "followup_days_range": [60, 900],
    "prior_observation_days_range": [30, 400],
}

GENDER = {"male": 8507, "female": 8532}

# ---- the vocabulary: (concept_id, name, domain, vocabulary, class, standard, code) ------------------------
# Source codes are real codes of their systems; standard and drug concepts get ids in the range OMOP keeps
# for local concepts (above 2,000,000,000) and say so in their codes.
_S = 2_000_000_000


def _vocabulary() -> tuple[pd.DataFrame, list[tuple[int, int]], list[tuple[int, int]], dict[str, Any]]:
    concepts: list[tuple] = []
    maps: list[tuple[int, int]] = []        # (source concept, standard concept): "Maps to"
    ancestors: list[tuple[int, int]] = []   # (ancestor, descendant)
    nid = iter(range(_S + 1, _S + 100_000))

    def std(name: str, domain: str, vocab: str = "SNOMED") -> int:
        cid = next(nid)
        concepts.append((cid, name, domain, vocab, "Clinical Finding", "S", f"SYNTHETIC-{cid - _S}"))
        return cid

    def src(code: str, name: str, domain: str, vocab: str, target: int | None) -> int:
        cid = next(nid)
        concepts.append((cid, name, domain, vocab, "Source code", None, code))
        if target is not None:
            maps.append((cid, target))
        return cid

    v: dict[str, Any] = {}
    # conditions and procedures: each index event one standard concept, several source codes
    v["tha_std"] = std("Total replacement of hip", "Procedure")
    v["tha"] = [src("27130", "Arthroplasty, acetabular and proximal femoral prosthetic replacement", "Procedure",
                    "CPT4", v["tha_std"]),
                src("0SR90JZ", "Replacement of right hip joint with synthetic substitute", "Procedure", "ICD10PCS",
                    v["tha_std"]),
                src("0SRB0J9", "Replacement of left hip joint with synthetic substitute, cemented", "Procedure",
                    "ICD10PCS", v["tha_std"])]
    v["hip_revision_std"] = std("Revision of total hip replacement", "Procedure")
    v["hip_revision"] = [src("27134", "Revision of total hip arthroplasty; both components", "Procedure", "CPT4",
                             v["hip_revision_std"]),
                         src("0SW90JZ", "Revision of synthetic substitute in right hip joint", "Procedure",
                             "ICD10PCS", v["hip_revision_std"])]
    v["hemiarthroplasty"] = [src("27125", "Hemiarthroplasty, hip, partial", "Procedure", "CPT4",
                                 std("Hemiarthroplasty of hip", "Procedure"))]  # not a THA
    v["fracture_std"] = std("Fracture of femur", "Condition")
    v["long_bone_fracture"] = [src("S72.001A", "Fracture of unspecified part of neck of right femur, initial",
                                   "Condition", "ICD10CM", v["fracture_std"]),
                               src("S82.201A", "Unspecified fracture of shaft of right tibia, initial", "Condition",
                                   "ICD10CM", std("Fracture of tibia", "Condition")),
                               src("S42.301A", "Unspecified fracture of shaft of humerus, right arm, initial",
                                   "Condition", "ICD10CM", std("Fracture of humerus", "Condition"))]
    v["sci"] = [src("S14.109A", "Unspecified injury at unspecified level of cervical spinal cord, initial",
                    "Condition", "ICD10CM", std("Injury of cervical spinal cord", "Condition")),
                src("S34.109A", "Unspecified injury to unspecified level of lumbar spinal cord, initial",
                    "Condition", "ICD10CM", std("Injury of lumbar spinal cord", "Condition"))]
    v["tbi"] = [src("S06.5X0A", "Traumatic subdural hemorrhage without loss of consciousness, initial",
                    "Condition", "ICD10CM", std("Traumatic subdural haemorrhage", "Condition"))]
    v["stroke"] = [src("I63.9", "Cerebral infarction, unspecified", "Condition", "ICD10CM",
                       std("Cerebral infarction", "Condition")),
                   src("I61.9", "Nontraumatic intracerebral hemorrhage, unspecified", "Condition", "ICD10CM",
                       std("Intracerebral haemorrhage", "Condition"))]
    v["burn"] = [src("T31.40", "Burns involving 40-49% of body surface with 0% to 9% third degree burns",
                     "Condition", "ICD10CM", std("Burn of skin", "Condition")),
                 src("T24.301A", "Burn of third degree of unspecified site of right lower limb, initial",
                     "Condition", "ICD10CM", std("Full thickness burn of lower limb", "Condition"))]
    v["ho_std"] = std("Heterotopic ossification", "Condition")
    v["ho"] = [src("M61.051", "Myositis ossificans traumatica, right thigh", "Condition", "ICD10CM", v["ho_std"]),
               src("M61.251", "Paralytic calcification and ossification of muscle, right thigh", "Condition",
                   "ICD10CM", v["ho_std"]),
               src("M61.351", "Calcification and ossification of muscles associated with burns, right thigh",
                   "Condition", "ICD10CM", v["ho_std"]),
               src("M61.551", "Other ossification of muscle, right thigh", "Condition", "ICD10CM", v["ho_std"])]
    v["not_ho"] = [src("M61.451", "Other calcification of muscle, right thigh", "Condition", "ICD10CM",
                       std("Calcification of muscle", "Condition")),
                   src("M61.10", "Myositis ossificans progressiva, unspecified site", "Condition", "ICD10CM",
                       std("Fibrodysplasia ossificans progressiva", "Condition"))]
    v["other_condition"] = [src("E11.9", "Type 2 diabetes mellitus without complications", "Condition", "ICD10CM",
                                std("Type 2 diabetes mellitus", "Condition"))]
    v["rt_std"] = std("Radiotherapy", "Procedure")
    v["radiotherapy"] = [src("77402", "Radiation treatment delivery, >=1 MeV; simple", "Procedure", "CPT4",
                             v["rt_std"]),
                         src("77412", "Radiation treatment delivery, >=1 MeV; complex", "Procedure", "CPT4",
                             v["rt_std"])]
    # drugs: ATC classes above ingredients above clinical drugs (concept_ancestor), as in the real vocabulary
    m01a = src("M01A", "ANTIINFLAMMATORY AND ANTIRHEUMATIC PRODUCTS, NON-STEROIDS", "Drug", "ATC", None)
    m05ba = src("M05BA", "Bisphosphonates", "Drug", "ATC", None)
    drugs = {}
    for atc, name, parent in (("M01AB01", "indometacin", m01a), ("M01AE01", "ibuprofen", m01a),
                              ("M01AH01", "celecoxib", m01a), ("M05BA07", "risedronic acid", m05ba),
                              ("M05BA08", "zoledronic acid", m05ba)):
        cls = src(atc, name, "Drug", "ATC", None)
        ing = std(f"{name} (ingredient)", "Drug", "RxNorm")
        scd = std(f"{name} oral product", "Drug", "RxNorm")
        ancestors += [(parent, cls), (parent, ing), (parent, scd), (cls, ing), (cls, scd), (ing, scd)]
        drugs[name] = (ing, scd)
    v["drugs"] = drugs
    v["other_drug"] = std("paracetamol oral product", "Drug", "RxNorm")
    v["alp_std"] = src("6768-6", "Alkaline phosphatase [Enzymatic activity/volume] in Serum or Plasma",
                       "Measurement", "LOINC", None)
    frame = pd.DataFrame(concepts, columns=["concept_id", "concept_name", "domain_id", "vocabulary_id",
                                            "concept_class_id", "standard_concept", "concept_code"])
    frame.loc[frame["concept_id"] == v["alp_std"], "standard_concept"] = "S"  # LOINC is standard for labs
    frame["valid_start_date"] = "1970-01-01"
    frame["valid_end_date"] = "2099-12-31"
    frame["invalid_reason"] = None
    return frame, maps, ancestors, v


@dataclass
class SyntheticCdm:
    """CDM tables, per-person truth and the parameters of one draw."""

    tables: dict[str, pd.DataFrame]
    truth: pd.DataFrame
    parameters: dict[str, Any]
    seed: int
    summary: dict[str, Any] = field(default_factory=dict)

    def write(self, folder: str | Path) -> Path:
        """One CSV per CDM table (``person.csv``, ...), plus ``truth.csv`` and ``truth.json``."""
        folder = Path(folder)
        folder.mkdir(parents=True, exist_ok=True)
        for name, t in self.tables.items():
            t.to_csv(folder / f"{name}.csv", index=False, date_format="%Y-%m-%d")
        self.truth.to_csv(folder / "truth.csv", index=False, date_format="%Y-%m-%d")
        (folder / "truth.json").write_text(json.dumps({"seed": self.seed, "parameters": self.parameters,
                                                       "summary": self.summary}, indent=2))
        return folder


def _choice(rng: np.random.Generator, probs: dict[str, float], n: int) -> np.ndarray:
    keys = list(probs)
    p = np.array([probs[k] for k in keys], dtype=float)
    return np.array(keys, dtype=object)[rng.choice(len(keys), size=n, p=p / p.sum())]


def _prophylaxis_records(rng: np.random.Generator, v: dict, std_of: dict, arm: str, pid: int, index_day: int,
                         day0: np.datetime64, add_event, drug: list, drug_ids) -> str:
    """The records of prophylaxis ``arm`` given around ``index_day``: the radiotherapy procedure (through
    ``add_event``) and the drug exposures appended to ``drug``, with the decoys (a late NSAID course, an
    unrelated drug). Returns the NSAID agent ("none" without one). The draws from
    ``rng`` are made in this order for every person, so a seed gives the same tables."""
    P = PARAMETERS
    agent = "none"
    if "radiotherapy" in arm:
        rc = v["radiotherapy"][rng.integers(2)]
        add_event("procedure", pid, index_day + int(rng.integers(0, 2)), rc, std_of[rc])
    if "nsaid" in arm:
        agent = _choice(rng, P["nsaid_agents"], 1)[0]
        name = {"indomethacin": "indometacin", "ibuprofen": "ibuprofen", "other": "celecoxib"}[agent]
        ing, scd = v["drugs"][name]
        drug.append((next(drug_ids), pid, scd if rng.random() < 0.7 else ing,
                     day0 + np.timedelta64(index_day + int(rng.integers(0, 3)), "D"), 0))
    if arm == "bisphosphonate":
        ing, scd = v["drugs"]["zoledronic acid" if rng.random() < 0.5 else "risedronic acid"]
        drug.append((next(drug_ids), pid, scd, day0 + np.timedelta64(index_day + int(rng.integers(0, 11)), "D"), 0))
    if rng.random() < P["decoy_late_nsaid"]:  # a course half a year later is not prophylaxis
        drug.append((next(drug_ids), pid, v["drugs"]["ibuprofen"][1], day0 + np.timedelta64(index_day + 180, "D"), 0))
    drug.append((next(drug_ids), pid, v["other_drug"], day0 + np.timedelta64(index_day + 1, "D"), 0))
    return agent


def generate(n: int = 1000, seed: int = 1) -> SyntheticCdm:
    """Draw a CDM of ``n`` persons (seeded; same seed, same tables)."""
    if isinstance(n, bool) or not isinstance(n, int) or not 1 <= n <= 1_000_000:
        raise ValueError(f"n must be an integer from 1 to 1,000,000, not {n!r}")
    rng = np.random.default_rng(seed)
    P = PARAMETERS
    concept, maps, ancestors, v = _vocabulary()
    day0 = np.datetime64("2015-01-01")
    person_id = np.arange(1, n + 1) * 7 + 1000  # ids that are not row numbers
    sex = _choice(rng, {"male": 0.5, "female": 0.5}, n)
    yob = rng.integers(1935, 1995, n)
    mob = rng.integers(1, 13, n)
    obs_start = rng.integers(0, 1500, n)
    prior_obs = rng.integers(*P["prior_observation_days_range"], n)
    index_day = obs_start + prior_obs
    followup = rng.integers(*P["followup_days_range"], n)
    event = _choice(rng, P["index_probabilities"], n)
    before_obs = (rng.random(n) < P["index_before_observation"]) & (event != "none")
    dies = rng.random(n) < P["death"]
    death_after = np.where(dies, rng.integers(10, np.maximum(followup, 11)), -1)
    followup = np.where(dies, death_after, followup)
    obs_end = index_day + followup

    cond, proc, drug, meas, death, truth = [], [], [], [], [], []
    ids = {"cond": iter(range(1, 10**9)), "proc": iter(range(1, 10**9)), "drug": iter(range(1, 10**9)),
           "meas": iter(range(1, 10**9))}

    def add_event(kind: str, pid: int, day: int, source: int | None, standard: int) -> None:
        d = day0 + np.timedelta64(int(day), "D")
        if kind == "condition":
            cond.append((next(ids["cond"]), pid, standard, d, 32817, source or 0))
        else:
            proc.append((next(ids["proc"]), pid, standard, d, 32817, source or 0))

    std_of = {cid: t for cid, t in maps}
    for i in range(n):
        pid = int(person_id[i])
        ev = event[i]
        row: dict[str, Any] = {"person_id": pid, "sex": sex[i], "year_of_birth": int(yob[i]), "in_cohort": False,
                               "index_event": None, "index_date": None, "prophylaxis": None, "nsaid_agent": None,
                               "prior_ho": None, "ho": None, "ho_date": None, "death_date": None,
                               "last_followup_date": None, "n_alp": 0}
        # something unrelated for everyone
        oc = v["other_condition"][0]
        add_event("condition", pid, int(obs_start[i]) + 5, oc, std_of[oc])
        if ev == "none":
            if rng.random() < 0.3:  # a hemiarthroplasty is not a THA
                h = v["hemiarthroplasty"][0]
                add_event("procedure", pid, int(index_day[i]), h, std_of[h])
            truth.append(row)
            continue
        kind = "procedure" if ev in ("tha", "hip_revision") else "condition"
        code = v[ev][rng.integers(len(v[ev]))]
        standard_only = ev == "long_bone_fracture" and rng.random() < 0.3
        iday = int(obs_start[i]) - int(rng.integers(30, 300)) if before_obs[i] else int(index_day[i])
        add_event(kind, pid, iday, None if standard_only else code, std_of[code])
        if not before_obs[i] and rng.random() < P["second_index_event"]:
            other = INDEX_EVENTS[rng.integers(len(INDEX_EVENTS))]
            c2 = v[other][0]
            add_event("procedure" if other in ("tha", "hip_revision") else "condition", pid,
                      int(index_day[i]) + int(rng.integers(100, 300)), c2, std_of[c2])
        if before_obs[i]:
            truth.append(row)
            continue
        arth = ev in ("tha", "hip_revision")
        arm = _choice(rng, P["prophylaxis_after_arthroplasty"] if arth else P["prophylaxis_otherwise"], 1)[0]
        agent = _prophylaxis_records(rng, v, std_of, arm, pid, int(index_day[i]), day0, add_event, drug, ids["drug"])
        prior = bool(rng.random() < P["prior_ho"])
        if prior:
            hc = v["ho"][rng.integers(len(v["ho"]))]
            add_event("condition", pid, int(obs_start[i]) + int(rng.integers(0, prior_obs[i])), hc, std_of[hc])
        ho_day = int(rng.integers(*P["ho_day_range"]))
        ho = bool(rng.random() < P["ho_probability"][arm]) and bool(ho_day <= followup[i])
        if ho:
            hc = v["ho"][rng.integers(len(v["ho"]))]
            add_event("condition", pid, int(index_day[i]) + ho_day, None if rng.random() < 0.15 else hc, std_of[hc])
        if rng.random() < P["decoy_not_ho"]:
            dc = v["not_ho"][rng.integers(2)]
            add_event("condition", pid, int(index_day[i]) + int(rng.integers(1, max(2, followup[i]))), dc, std_of[dc])
        n_alp = 0
        for d in (-10, 0, 30, 90):
            if d <= followup[i] and (d >= 0 or prior_obs[i] > 10):
                meas.append((next(ids["meas"]), pid, v["alp_std"], day0 + np.timedelta64(int(index_day[i]) + d, "D"),
                             round(float(rng.normal(85 + (60 if ho and d >= 30 else 0), 15)), 1), 8645, 0))
                n_alp += d >= 0
        if dies[i]:
            death.append((pid, day0 + np.timedelta64(int(obs_end[i]), "D"), 32817))
        row.update(in_cohort=True, index_event=ev, index_date=day0 + np.timedelta64(int(index_day[i]), "D"),
                   prophylaxis=arm, nsaid_agent=agent, prior_ho=prior, ho=ho,
                   ho_date=day0 + np.timedelta64(int(index_day[i]) + ho_day, "D") if ho else None,
                   death_date=day0 + np.timedelta64(int(obs_end[i]), "D") if dies[i] else None,
                   last_followup_date=day0 + np.timedelta64(int(obs_end[i]), "D"), n_alp=n_alp)
        truth.append(row)

    tables = {
        "person": pd.DataFrame({"person_id": person_id, "gender_concept_id": [GENDER[s] for s in sex],
                                "year_of_birth": yob, "month_of_birth": mob, "day_of_birth": 15,
                                "race_concept_id": 0, "ethnicity_concept_id": 0, "care_site_id": None}),
        "observation_period": pd.DataFrame({
            "observation_period_id": np.arange(1, n + 1), "person_id": person_id,
            "observation_period_start_date": day0 + obs_start.astype("timedelta64[D]"),
            "observation_period_end_date": day0 + obs_end.astype("timedelta64[D]"),
            "period_type_concept_id": 32817}),
        "condition_occurrence": pd.DataFrame(cond, columns=["condition_occurrence_id", "person_id",
                                                            "condition_concept_id", "condition_start_date",
                                                            "condition_type_concept_id", "condition_source_concept_id"]),
        "procedure_occurrence": pd.DataFrame(proc, columns=["procedure_occurrence_id", "person_id",
                                                            "procedure_concept_id", "procedure_date",
                                                            "procedure_type_concept_id", "procedure_source_concept_id"]),
        "drug_exposure": pd.DataFrame(drug, columns=["drug_exposure_id", "person_id", "drug_concept_id",
                                                     "drug_exposure_start_date", "drug_source_concept_id"]),
        "death": pd.DataFrame(death, columns=["person_id", "death_date", "death_type_concept_id"]),
        "measurement": pd.DataFrame(meas, columns=["measurement_id", "person_id", "measurement_concept_id",
                                                   "measurement_date", "value_as_number", "unit_concept_id",
                                                   "measurement_source_concept_id"]),
        "concept": concept,
        "concept_relationship": pd.DataFrame(
            [(a, b, "Maps to") for a, b in maps] + [(b, a, "Mapped from") for a, b in maps],
            columns=["concept_id_1", "concept_id_2", "relationship_id"]).assign(
                valid_start_date="1970-01-01", valid_end_date="2099-12-31", invalid_reason=None),
        "concept_ancestor": pd.DataFrame(
            [(c, c, 0, 0) for c in concept.loc[concept["standard_concept"].eq("S") | concept["vocabulary_id"].eq("ATC"),
                                               "concept_id"]]
            + [(a, d, 1, 1) for a, d in ancestors],
            columns=["ancestor_concept_id", "descendant_concept_id", "min_levels_of_separation",
                     "max_levels_of_separation"]),
    }
    truth_df = pd.DataFrame(truth)
    for c in ("in_cohort", "prior_ho", "ho"):  # numpy bools add as logical or: make them real booleans
        truth_df[c] = truth_df[c].astype("boolean")
    for c in ("index_date", "ho_date", "death_date", "last_followup_date"):
        truth_df[c] = pd.to_datetime(truth_df[c])
    cohort = truth_df[truth_df["in_cohort"]]
    summary = {"persons": n, "episodes": int(len(cohort)),
               "by_index_event": cohort["index_event"].value_counts().sort_index().to_dict(),
               "by_prophylaxis": cohort["prophylaxis"].value_counts().sort_index().to_dict(),
               "ho": int(cohort["ho"].sum()), "prior_ho": int(cohort["prior_ho"].sum()),
               "deaths": int(cohort["death_date"].notna().sum()), "alp_measurements": int(cohort["n_alp"].sum())}
    return SyntheticCdm(tables, truth_df, P, seed, summary)


__all__ = ["SyntheticCdm", "generate", "PARAMETERS"]
