-- Rate-limit counts shared by the instances on one database (src/calls/limits.rs): how many requests or
-- tokens a key (a person, an API key, a client address) used in a minute (unix minutes).
CREATE TABLE rate_counters (
    key    TEXT NOT NULL,
    minute BIGINT NOT NULL,
    n      BIGINT NOT NULL,
    PRIMARY KEY (key, minute)
);
