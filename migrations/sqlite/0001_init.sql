-- Accounts, posts with their mentions, and the mirrored Mastodon statuses.
-- Times are Unix milliseconds: the app reads both databases through one AnyPool,
-- which carries integers and text but no timestamp types.

CREATE TABLE users (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    email TEXT NOT NULL UNIQUE,
    handle TEXT NOT NULL UNIQUE,
    password_hash TEXT NOT NULL,
    created_ms INTEGER NOT NULL
);

-- A post's id is the cursor of every feed it appears in.
CREATE TABLE posts (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    author_id INTEGER NOT NULL REFERENCES users (id),
    body TEXT NOT NULL,
    created_ms INTEGER NOT NULL
);

CREATE TABLE mentions (
    user_id INTEGER NOT NULL REFERENCES users (id),
    post_id INTEGER NOT NULL REFERENCES posts (id),
    PRIMARY KEY (user_id, post_id)
);

-- seq is the mirror's cursor and moves on every change (new, edited, deleted), so a
-- poller asking for changes after its cursor learns of edits and deletes too.
-- Deleted statuses stay as tombstones until retention removes them.
CREATE TABLE statuses (
    seq INTEGER PRIMARY KEY,
    first_seq INTEGER NOT NULL,
    status_id TEXT NOT NULL UNIQUE,
    deleted INTEGER NOT NULL DEFAULT 0,
    body TEXT NOT NULL,
    received_ms INTEGER NOT NULL
);
