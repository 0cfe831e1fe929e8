-- How far the erasure of deleted conversations went through the community
-- service's list of them (deletions.go): one row, the time of the last one
-- erased (each pass starts a little before it).
CREATE TABLE deletion_cursor (
    only_row   boolean PRIMARY KEY DEFAULT true CHECK (only_row),
    deleted_at timestamptz NOT NULL
);
