-- Datasets and their immutable versions. A version's items (path, size, BLAKE3 hash, metadata)
-- are a manifest kept in the blob store under its own digest: identical content is one manifest,
-- and "nothing changed" is "the same manifest digest as the latest version".
CREATE TABLE datasets (
    dataset_id INTEGER PRIMARY KEY,
    name TEXT NOT NULL UNIQUE,
    description TEXT NOT NULL,
    created_at BIGINT NOT NULL
);

CREATE TABLE dataset_versions (
    dataset_id BIGINT NOT NULL REFERENCES datasets (dataset_id),
    version BIGINT NOT NULL,
    kind TEXT NOT NULL,
    manifest TEXT NOT NULL,
    parent BIGINT,
    message TEXT NOT NULL,
    author TEXT NOT NULL,
    source TEXT NOT NULL,
    items BIGINT NOT NULL,
    bytes BIGINT NOT NULL,
    created_at BIGINT NOT NULL,
    PRIMARY KEY (dataset_id, version)
);
CREATE INDEX dataset_versions_by_manifest ON dataset_versions (manifest);
