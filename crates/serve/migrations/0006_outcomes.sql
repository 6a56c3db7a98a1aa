-- Each remembered answer's scores (a two-class model's score for its second class, per row),
-- and each scored request's rows (what was said, what was true, the scores), so that precision,
-- recall, F1, ROC AUC, MAE and RMSE can be computed for any positive label.
ALTER TABLE serve_predictions ADD COLUMN scores TEXT NOT NULL DEFAULT '[]';
ALTER TABLE serve_feedback ADD COLUMN said TEXT NOT NULL DEFAULT '[]';
ALTER TABLE serve_feedback ADD COLUMN truth TEXT NOT NULL DEFAULT '[]';
ALTER TABLE serve_feedback ADD COLUMN scores TEXT NOT NULL DEFAULT '[]';
