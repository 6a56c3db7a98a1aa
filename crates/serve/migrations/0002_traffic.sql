-- An endpoint's traffic: its variants, their bucket shares and owners, its shadow and routing-key
-- header, as JSON (empty: the endpoint's reference takes everything); `revision` counts changes,
-- so that concurrent writers (replicas, a rollout driver) change it by compare-and-swap.
ALTER TABLE serve_endpoints ADD COLUMN traffic TEXT NOT NULL DEFAULT '';
ALTER TABLE serve_endpoints ADD COLUMN revision BIGINT NOT NULL DEFAULT 0;
