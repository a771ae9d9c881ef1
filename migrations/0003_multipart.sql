-- Multipart uploads: the store's upload id and the part size the origin
-- chose, while the asset is pending (NULL for single-PUT assets).
ALTER TABLE assets ADD COLUMN upload_id TEXT;
ALTER TABLE assets ADD COLUMN part_size BIGINT;
