-- Files served by the artifact proxy: a path under the artifact root and the blob it names.
CREATE TABLE artifact_files (
    path TEXT PRIMARY KEY NOT NULL,
    digest TEXT NOT NULL,
    size BIGINT NOT NULL,
    created_at BIGINT NOT NULL
);
