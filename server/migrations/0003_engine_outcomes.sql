-- Outcomes of the engine's work already told (store/outcomes.rs): one row per key, so a retry
-- after a failed status write does not notify or audit a second time.
CREATE TABLE engine_outcomes (
    outcome_key TEXT PRIMARY KEY,
    at BIGINT NOT NULL
);
