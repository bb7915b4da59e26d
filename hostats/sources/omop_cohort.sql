-- The HO cohort from an OMOP CDM (v5.3 / v5.4). One text for DuckDB and PostgreSQL: standard SQL only
-- (CTEs, window functions, DATE - DATE in days, DATE + integer, MAKE_DATE). hostats.sources.omop fills the
-- ${...} fields from concept_sets.toml (codes, index priorities, windows: validated text and integers) and
-- the CDM schema (a validated identifier), and runs each query below in a read-only connection.
--
-- Each concept set is searched in the table of its domain (condition, procedure, drug, measurement).
-- Episode: a person's first index event (concept sets [index.*]) that lies inside an observation period;
-- on a tie the earlier set in concept_sets.toml wins. Follow-up ends at the end of that observation period.
-- Outcome: the first HO ([outcome.ho]) after the index date, within follow-up; an HO on or before the
-- index date is prior HO. Prophylaxis: radiotherapy (procedures), NSAIDs and bisphosphonates (drug
-- exposures) starting within their [windows] of the index date.

-- @ctes
codes (set_name, domain, vocabulary_id, pattern) AS (
    VALUES ${codes}
),
index_priority (set_name, priority) AS (
    VALUES ${priorities}
),
set_source AS (          -- concepts that carry a listed code
    SELECT DISTINCT codes.set_name, codes.domain, c.concept_id
    FROM codes
    JOIN ${cdm}concept c ON c.vocabulary_id = codes.vocabulary_id AND c.concept_code LIKE codes.pattern
),
set_mapped AS (          -- ... and the standard concepts they map to
    SELECT set_name, domain, concept_id FROM set_source
    UNION
    SELECT s.set_name, s.domain, cr.concept_id_2
    FROM set_source s
    JOIN ${cdm}concept_relationship cr
      ON cr.concept_id_1 = s.concept_id AND cr.relationship_id = 'Maps to' AND cr.invalid_reason IS NULL
),
concept_set AS (         -- ... with all their descendants
    SELECT set_name, domain, concept_id FROM set_mapped
    UNION
    SELECT m.set_name, m.domain, ca.descendant_concept_id
    FROM set_mapped m
    JOIN ${cdm}concept_ancestor ca ON ca.ancestor_concept_id = m.concept_id
),
condition_events AS (    -- matched on the standard concept or on the source concept
    SELECT co.person_id, cs.set_name, CAST(co.condition_start_date AS DATE) AS event_date, co.condition_occurrence_id AS event_id
    FROM ${cdm}condition_occurrence co JOIN concept_set cs ON cs.concept_id = co.condition_concept_id
                                   AND cs.domain = 'condition'
    UNION
    SELECT co.person_id, cs.set_name, CAST(co.condition_start_date AS DATE), co.condition_occurrence_id
    FROM ${cdm}condition_occurrence co JOIN concept_set cs ON cs.concept_id = co.condition_source_concept_id
                                   AND cs.domain = 'condition'
),
procedure_events AS (
    SELECT po.person_id, cs.set_name, CAST(po.procedure_date AS DATE) AS event_date, po.procedure_occurrence_id AS event_id
    FROM ${cdm}procedure_occurrence po JOIN concept_set cs ON cs.concept_id = po.procedure_concept_id
                                   AND cs.domain = 'procedure'
    UNION
    SELECT po.person_id, cs.set_name, CAST(po.procedure_date AS DATE), po.procedure_occurrence_id
    FROM ${cdm}procedure_occurrence po JOIN concept_set cs ON cs.concept_id = po.procedure_source_concept_id
                                   AND cs.domain = 'procedure'
),
drug_events AS (
    SELECT de.person_id, cs.set_name, CAST(de.drug_exposure_start_date AS DATE) AS event_date, de.drug_exposure_id AS event_id
    FROM ${cdm}drug_exposure de JOIN concept_set cs ON cs.concept_id = de.drug_concept_id
                                   AND cs.domain = 'drug'
    UNION
    SELECT de.person_id, cs.set_name, CAST(de.drug_exposure_start_date AS DATE), de.drug_exposure_id
    FROM ${cdm}drug_exposure de JOIN concept_set cs ON cs.concept_id = de.drug_source_concept_id
                                   AND cs.domain = 'drug'
),
index_events AS (        -- candidate index events inside an observation period
    SELECT e.person_id, e.set_name, e.event_date, p.priority, CAST(op.observation_period_end_date AS DATE) AS period_end
    FROM (SELECT person_id, set_name, event_date FROM condition_events
          UNION ALL
          SELECT person_id, set_name, event_date FROM procedure_events) e
    JOIN index_priority p ON p.set_name = e.set_name
    JOIN ${cdm}observation_period op
      ON op.person_id = e.person_id
     AND e.event_date >= CAST(op.observation_period_start_date AS DATE)
     AND e.event_date <= CAST(op.observation_period_end_date AS DATE)
),
episodes AS (            -- the first per person
    SELECT person_id, set_name AS index_event, event_date AS index_date, period_end AS last_followup_date
    FROM (SELECT ie.*, ROW_NUMBER() OVER (PARTITION BY ie.person_id
                                           ORDER BY ie.event_date, ie.priority, ie.period_end DESC) AS rn
          FROM index_events ie) ranked
    WHERE rn = 1
)

-- @query cohort
, ho AS (
    SELECT ep.person_id,
           MIN(CASE WHEN ce.event_date > ep.index_date AND ce.event_date <= ep.last_followup_date
                    THEN ce.event_date END) AS ho_date,
           MAX(CASE WHEN ce.event_date <= ep.index_date THEN 1 ELSE 0 END) AS prior_ho
    FROM episodes ep
    JOIN condition_events ce ON ce.person_id = ep.person_id AND ce.set_name = 'ho'
    GROUP BY ep.person_id
),
exposure AS (
    SELECT ep.person_id,
           MAX(CASE WHEN x.set_name = 'radiotherapy'
                     AND x.event_date - ep.index_date BETWEEN ${radiotherapy_from} AND ${radiotherapy_to}
                    THEN 1 ELSE 0 END) AS radiotherapy,
           MAX(CASE WHEN x.set_name = 'nsaid'
                     AND x.event_date - ep.index_date BETWEEN ${nsaid_from} AND ${nsaid_to}
                    THEN 1 ELSE 0 END) AS nsaid,
           MAX(CASE WHEN x.set_name = 'indomethacin'
                     AND x.event_date - ep.index_date BETWEEN ${nsaid_from} AND ${nsaid_to}
                    THEN 1 ELSE 0 END) AS indomethacin,
           MAX(CASE WHEN x.set_name = 'ibuprofen'
                     AND x.event_date - ep.index_date BETWEEN ${nsaid_from} AND ${nsaid_to}
                    THEN 1 ELSE 0 END) AS ibuprofen,
           MAX(CASE WHEN x.set_name = 'bisphosphonate'
                     AND x.event_date - ep.index_date BETWEEN ${bisphosphonate_from} AND ${bisphosphonate_to}
                    THEN 1 ELSE 0 END) AS bisphosphonate
    FROM episodes ep
    JOIN (SELECT person_id, set_name, event_date FROM procedure_events
          UNION ALL
          SELECT person_id, set_name, event_date FROM drug_events) x ON x.person_id = ep.person_id
    GROUP BY ep.person_id
),
deaths AS (
    SELECT person_id, MIN(CAST(death_date AS DATE)) AS death_date FROM ${cdm}death GROUP BY person_id
)
SELECT CAST(ep.person_id AS VARCHAR(40)) AS patient_id,
       ep.index_event,
       ep.index_date,
       CAST(ep.index_date - MAKE_DATE(CAST(p.year_of_birth AS INTEGER), CAST(COALESCE(p.month_of_birth, 7) AS INTEGER),
                                      CAST(COALESCE(p.day_of_birth, 1) AS INTEGER)) AS DOUBLE PRECISION) / 365.25
           AS age_years,
       CASE p.gender_concept_id WHEN 8507 THEN 'male' WHEN 8532 THEN 'female' END AS sex,
       COALESCE(h.prior_ho, 0) AS prior_ho,
       CASE WHEN x.radiotherapy = 1 AND x.nsaid = 1 THEN 'radiotherapy_nsaid'
            WHEN x.radiotherapy = 1 THEN 'radiotherapy'
            WHEN x.nsaid = 1 THEN 'nsaid'
            WHEN x.bisphosphonate = 1 THEN 'bisphosphonate'
            ELSE 'none' END AS prophylaxis,
       CASE WHEN COALESCE(x.nsaid, 0) = 0 THEN 'none'
            WHEN x.indomethacin = 1 THEN 'indomethacin'
            WHEN x.ibuprofen = 1 THEN 'ibuprofen'
            ELSE 'other' END AS nsaid_agent,
       CASE WHEN h.ho_date IS NULL THEN 0 ELSE 1 END AS ho,
       h.ho_date,
       d.death_date,
       ep.last_followup_date
FROM episodes ep
JOIN ${cdm}person p ON p.person_id = ep.person_id
LEFT JOIN ho h ON h.person_id = ep.person_id
LEFT JOIN exposure x ON x.person_id = ep.person_id
LEFT JOIN deaths d ON d.person_id = ep.person_id
ORDER BY ep.person_id

-- @query assessments
, alp AS (
    SELECT m.person_id, m.measurement_id, CAST(m.measurement_date AS DATE) AS measurement_date, m.value_as_number
    FROM ${cdm}measurement m JOIN concept_set cs ON cs.concept_id = m.measurement_concept_id
                                   AND cs.domain = 'measurement'
    WHERE cs.set_name = 'alp'
    UNION
    SELECT m.person_id, m.measurement_id, CAST(m.measurement_date AS DATE), m.value_as_number
    FROM ${cdm}measurement m JOIN concept_set cs ON cs.concept_id = m.measurement_source_concept_id
                                   AND cs.domain = 'measurement'
    WHERE cs.set_name = 'alp'
)
SELECT CAST(a.person_id AS VARCHAR(40)) AS patient_id,
       a.measurement_date AS date,
       'alp' AS test,
       CAST(NULL AS VARCHAR(8)) AS result,
       a.value_as_number AS value
FROM alp a
JOIN episodes ep ON ep.person_id = a.person_id
WHERE a.measurement_date >= ep.index_date AND a.measurement_date <= ep.last_followup_date
ORDER BY a.person_id, a.measurement_date, a.measurement_id

-- @query attrition
SELECT (SELECT COUNT(*) FROM ${cdm}person) AS persons,
       (SELECT COUNT(DISTINCT e.person_id)
          FROM (SELECT person_id, set_name FROM condition_events
                UNION ALL
                SELECT person_id, set_name FROM procedure_events) e
          JOIN index_priority p ON p.set_name = e.set_name) AS persons_with_index_event,
       (SELECT COUNT(*) FROM episodes) AS episodes
