-- Extracted text is kept up to a configured size: when a file held more, this says where it was cut (bytes of
-- text kept); NULL when the whole text was kept.
ALTER TABLE files ADD COLUMN text_cut_bytes BIGINT;
