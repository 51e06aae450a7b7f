-- Cairn schema 5: the code version that ran each attempt (a hash of its
-- function's module), so that a rolling deploy shows what ran where: a failed
-- attempt's in attempts, the latest attempt's (the successful one's) in calls.
ALTER TABLE attempts ADD COLUMN code_version TEXT;
ALTER TABLE calls ADD COLUMN code_version TEXT;
