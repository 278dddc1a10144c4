-- The media catalogue (camera_server/media/catalogue.py). Safe to run on every start: it only creates what is missing.
-- The schema version lives in PRAGMA user_version; catalogue.py migrates older databases to it.

CREATE TABLE IF NOT EXISTS media (
    id INTEGER PRIMARY KEY,
    filename TEXT NOT NULL UNIQUE,              -- a plain name inside the media folder
    kind TEXT NOT NULL CHECK (kind IN ('picture', 'video', 'change', 'motion')),
    created REAL NOT NULL,                      -- unix seconds
    size INTEGER,                               -- bytes
    duration REAL,                              -- seconds, for videos
    width INTEGER,
    height INTEGER,
    camera TEXT,
    note TEXT
);

CREATE INDEX IF NOT EXISTS media_created ON media (created);
CREATE INDEX IF NOT EXISTS media_camera ON media (camera, created);    -- a camera's own, newest first

-- Moments the scene-change, motion and object detectors saw.
CREATE TABLE IF NOT EXISTS events (
    id INTEGER PRIMARY KEY,
    start REAL NOT NULL,                        -- unix seconds
    "end" REAL,                                 -- unix seconds; NULL while the event lasts
    kind TEXT NOT NULL,
    peak_score REAL,
    labels TEXT,                                -- a JSON list of strings
    snapshot TEXT,                              -- a file name in the media folder
    clip TEXT,                                  -- a file name in the media folder
    camera TEXT                                 -- the name of the camera that saw it (version 2)
);

CREATE INDEX IF NOT EXISTS events_start ON events (start);
CREATE INDEX IF NOT EXISTS events_camera ON events (camera, start);

-- Version 2 added events.camera: catalogue.py adds the column to a version 1 catalogue before this runs.
PRAGMA user_version = 2;
