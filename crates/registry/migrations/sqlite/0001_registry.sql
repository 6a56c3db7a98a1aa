-- The model registry: registered models, their numbered versions, tags and aliases.
-- `next_version` only grows, so a deleted version's number is never reused; deleting the
-- model deletes the row, and a model registered again under the name starts at 1.
CREATE TABLE registered_models (
    name TEXT PRIMARY KEY NOT NULL,
    description TEXT NOT NULL,
    creation_ms BIGINT NOT NULL,
    updated_ms BIGINT NOT NULL,
    next_version BIGINT NOT NULL
);
CREATE TABLE registered_model_tags (
    name TEXT NOT NULL,
    key TEXT NOT NULL,
    value TEXT NOT NULL,
    PRIMARY KEY (name, key)
);
-- `storage` is the artifact path the client's `source` resolved to; `model_file` the ONNX file
-- under it (when there is one), pinned by `model_digest` so that a version never changes.
CREATE TABLE model_versions (
    name TEXT NOT NULL,
    version BIGINT NOT NULL,
    creation_ms BIGINT NOT NULL,
    updated_ms BIGINT NOT NULL,
    description TEXT NOT NULL,
    source TEXT NOT NULL,
    run_id TEXT,
    model_id TEXT,
    stage TEXT NOT NULL,
    storage TEXT NOT NULL,
    flavors TEXT NOT NULL,
    model_file TEXT,
    model_digest TEXT,
    signature TEXT,
    PRIMARY KEY (name, version)
);
CREATE INDEX model_versions_by_run ON model_versions (run_id);
CREATE TABLE model_version_tags (
    name TEXT NOT NULL,
    version BIGINT NOT NULL,
    key TEXT NOT NULL,
    value TEXT NOT NULL,
    PRIMARY KEY (name, version, key)
);
CREATE TABLE model_aliases (
    name TEXT NOT NULL,
    alias TEXT NOT NULL,
    version BIGINT NOT NULL,
    PRIMARY KEY (name, alias)
);
