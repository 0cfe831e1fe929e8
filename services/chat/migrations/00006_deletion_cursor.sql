-- How far the erasure of deleted conversations went through the community
-- service's list of them (deletions.go): one row, the last one erased.
CREATE TABLE deletion_cursor (
    only_row     boolean PRIMARY KEY DEFAULT true CHECK (only_row),
    deleted_at   timestamptz NOT NULL,
    conversation text NOT NULL
);
