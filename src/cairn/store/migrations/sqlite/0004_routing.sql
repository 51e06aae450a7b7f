-- Cairn schema 4: which process runs what. A request run by one process alone
-- (run_local_application, cairn run) names it as its owner; other requests are
-- any serving worker's. Serving workers list the functions they have loaded, and
-- claim only calls of those.
ALTER TABLE requests ADD COLUMN owner TEXT;
CREATE TABLE worker_functions (
    worker_id     TEXT NOT NULL,
    function      TEXT NOT NULL,
    code_version  TEXT NOT NULL,
    PRIMARY KEY (worker_id, function)
);
CREATE INDEX worker_functions_by_function ON worker_functions (function);
