-- Deleting a group DM drops its read states: find them without a scan of
-- everyone's. (last_read_id is not in it, so moving a read state forward
-- stays a HOT update.)
CREATE INDEX read_states_by_conversation ON read_states (conv_type, conv_id);
