-- Accounts, posts with their mentions, and the mirrored Mastodon statuses.
-- Times are Unix milliseconds: the app reads both databases through one AnyPool,
-- which carries integers and text but no timestamp types.

CREATE TABLE users (
    id BIGSERIAL PRIMARY KEY,
    email TEXT NOT NULL UNIQUE,
    handle TEXT NOT NULL UNIQUE,
    password_hash TEXT NOT NULL,
    created_ms BIGINT NOT NULL
);

-- A post's id is the cursor of every feed it appears in.
CREATE TABLE posts (
    id BIGSERIAL PRIMARY KEY,
    author_id BIGINT NOT NULL REFERENCES users (id),
    body TEXT NOT NULL,
    created_ms BIGINT NOT NULL
);

CREATE TABLE mentions (
    user_id BIGINT NOT NULL REFERENCES users (id),
    post_id BIGINT NOT NULL REFERENCES posts (id),
    PRIMARY KEY (user_id, post_id)
);

-- seq is the mirror's cursor and moves on every change (new, edited, deleted), so a
-- poller asking for changes after its cursor learns of edits and deletes too.
-- Deleted statuses stay as tombstones until retention removes them.
CREATE TABLE statuses (
    seq BIGINT PRIMARY KEY,
    first_seq BIGINT NOT NULL,
    status_id TEXT NOT NULL UNIQUE,
    deleted BIGINT NOT NULL DEFAULT 0,
    body TEXT NOT NULL,
    received_ms BIGINT NOT NULL
);
