-- Multi-objective studies. A study's objectives, [{"metric": …, "direction": …}, …], in order
-- (null for studies made before: their one metric and direction); `metric` and `direction`
-- keep the first objective's. A trial's values, [v, …], one per objective, when complete;
-- `value` keeps the first.
ALTER TABLE tune_studies ADD COLUMN objectives TEXT;
ALTER TABLE tune_trials ADD COLUMN objective_values TEXT;
