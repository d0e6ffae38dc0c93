#!/usr/bin/env python3
"""Writes data/mastodon-sample.sse, a replayable public-timeline stream.

The file is byte-for-byte what Mastodon's streaming server sends on
/api/v1/streaming/public: a ":)" comment on connect, "event: NAME" and one
"data: PAYLOAD" line per event followed by a blank line, and a ":thump"
comment every 15 seconds. Payloads are Status entities as the REST
serializer renders them for an anonymous reader, JSON on one line with
"<", ">" and "&" escaped the way Rails escapes them.

Every account lives on example.com (the mirrored instance), example.org or
example.net. The output is fully determined by SEED, so regenerating it
gives the same file.

Usage: python3 scripts/gen_replay.py [OUTPUT]
"""

from __future__ import annotations

import html
import json
import random
import sys
from datetime import datetime, timedelta, timezone
from pathlib import Path
from urllib.parse import quote

SEED = 20250314
LOCAL = "example.com"
START = datetime(2025, 3, 14, 9, 0, 0, tzinfo=timezone.utc)
HEARTBEAT_MS = 15_000
REGULAR_POSTS = 380
DEFAULT_OUT = Path(__file__).resolve().parent.parent / "data" / "mastodon-sample.sse"

rng = random.Random(SEED)


# --- time and ids ---------------------------------------------------------


def iso(ms: int) -> str:
    moment = datetime.fromtimestamp(ms / 1000, tz=timezone.utc)
    return moment.strftime("%Y-%m-%dT%H:%M:%S.") + f"{ms % 1000:03d}Z"


def to_ms(moment: datetime) -> int:
    return int(moment.timestamp() * 1000)


class Snowflakes:
    """Mastodon-style ids: Unix milliseconds shifted left 16 bits, plus a sequence."""

    def __init__(self) -> None:
        self.last = 0

    def at(self, ms: int) -> str:
        candidate = (ms << 16) | rng.randrange(0, 1 << 12)
        self.last = max(self.last + 1, candidate)
        return str(self.last)


ids = Snowflakes()


def old_id(ms: int) -> str:
    """An id from before the recording, for boosted originals and stale deletes."""
    return str((ms << 16) | rng.randrange(0, 1 << 16))


def media_path(kind: str, snowflake: str) -> str:
    digits = snowflake.rjust(18, "0")
    parts = "/".join(digits[i : i + 3] for i in range(0, 18, 3))
    return f"{kind}/{parts}"


def token(n: int = 16) -> str:
    return "".join(rng.choice("0123456789abcdef") for _ in range(n))


# --- accounts and custom emoji --------------------------------------------

EMOJI_NAMES = ["wave_cat", "sparkles_blue", "coffee_steam", "tiny_fox", "loading_dots"]


def emoji(shortcode: str, domain: str = LOCAL) -> dict:
    base = f"https://{LOCAL}/system"
    if domain != LOCAL:
        base += "/cache"
    eid = str(100 + EMOJI_NAMES.index(shortcode))
    name = token()
    return {
        "shortcode": shortcode,
        "url": f"{base}/custom_emojis/images/000/000/{eid}/original/{name}.png",
        "static_url": f"{base}/custom_emojis/images/000/000/{eid}/static/{name}.png",
        "visible_in_picker": domain == LOCAL,
    }


# username, domain, display name, bot
ACCOUNT_SPECS = [
    ("ana_k", "example.com", "Ana K. :wave_cat:", False),
    ("tomasz", "example.com", "Tomasz", False),
    ("mireille", "example.org", "Mireille 🌻", False),
    ("kenji", "example.com", "健二", False),
    ("nikos", "example.net", "Νίκος", False),
    ("olga_v", "example.org", "Ольга", False),
    ("devika", "example.net", "देविका", False),
    ("hala", "example.org", "هالة", False),
    ("yossi", "example.net", "יוסי", False),
    ("fern", "example.com", "Fern (she/her)", False),
    ("quietriver", "example.org", "quiet river :tiny_fox:", False),
    ("bram", "example.net", "Bram", False),
    ("lucia", "example.com", "Lucía", False),
    ("weatherbot", "example.com", "Weather Bot", True),
    ("pixelgarden", "example.org", "Pixel Garden", False),
    ("sam", "example.net", "", False),
    ("ines", "example.com", "Inês", False),
    ("oddserver", "example.net", "Odd Server Test", False),
    ("chen_li", "example.org", "陈丽", False),
    ("marek", "example.com", "Marek", False),
]


def make_account(username: str, domain: str, display: str, bot: bool) -> dict:
    created_ms = to_ms(START) - rng.randrange(30, 2000) * 86_400_000
    account_id = old_id(created_ms)
    local = domain == LOCAL
    cache = "" if local else "cache/"
    avatar = token()
    header = token()
    avatar_url = (
        f"https://{LOCAL}/system/{cache}"
        f"{media_path('accounts/avatars', account_id)}/original/{avatar}.png"
    )
    header_url = (
        f"https://{LOCAL}/system/{cache}"
        f"{media_path('accounts/headers', account_id)}/original/{header}.jpg"
    )
    shortcodes = [name for name in EMOJI_NAMES if f":{name}:" in display]
    note = f"<p>Posting from {html.escape(domain)}. Mostly photos, tea and small projects.</p>"
    return {
        "id": account_id,
        "username": username,
        "acct": username if local else f"{username}@{domain}",
        "display_name": display,
        "locked": False,
        "bot": bot,
        "discoverable": rng.random() < 0.8,
        "indexable": rng.random() < 0.5,
        "group": False,
        "created_at": iso(created_ms - created_ms % 86_400_000),
        "note": note,
        "url": f"https://{domain}/@{username}",
        "uri": f"https://{domain}/users/{username}",
        "avatar": avatar_url,
        "avatar_static": avatar_url,
        "header": header_url,
        "header_static": header_url,
        "followers_count": rng.randrange(3, 4000),
        "following_count": rng.randrange(10, 900),
        "statuses_count": rng.randrange(50, 30000),
        "last_status_at": START.strftime("%Y-%m-%d"),
        "hide_collections": False,
        "emojis": [emoji(code, domain) for code in shortcodes],
        "fields": [],
    }


ACCOUNTS = [make_account(*spec) for spec in ACCOUNT_SPECS]
BY_NAME = {account["username"]: account for account in ACCOUNTS}
ORDINARY = [a for a in ACCOUNTS if a["username"] not in ("oddserver", "weatherbot")]


def domain_of(account: dict) -> str:
    return account["url"].split("/")[2]


# --- content rendering, the way Mastodon's formatter writes it -------------


def esc(text: str) -> str:
    return html.escape(text, quote=True)


def mention_html(account: dict) -> str:
    return (
        f'<span class="h-card" translate="no"><a href="{esc(account["url"])}" '
        f'class="u-url mention">@<span>{esc(account["username"])}</span></a></span>'
    )


def tag_url(name: str) -> str:
    return f"https://{LOCAL}/tags/{quote(name)}"


def hashtag_html(name: str) -> str:
    return (
        f'<a href="{esc(tag_url(name))}" class="mention hashtag" rel="tag">'
        f"#<span>{esc(name)}</span></a>"
    )


def link_html(url: str) -> str:
    scheme, rest = url.split("://", 1)
    shown, hidden = rest[:30], rest[30:]
    shown_class = "ellipsis" if hidden else ""
    return (
        f'<a href="{esc(url)}" target="_blank" rel="nofollow noopener noreferrer" '
        f'translate="no"><span class="invisible">{esc(scheme)}://</span>'
        f'<span class="{shown_class}">{esc(shown)}</span>'
        f'<span class="invisible">{esc(hidden)}</span></a>'
    )


class Post:
    """Collects a status's paragraphs and the entities they reference."""

    def __init__(self) -> None:
        self.paragraphs: list[list[str]] = []
        self.mentions: list[dict] = []
        self.tags: list[str] = []
        self.emojis: list[str] = []

    def para(self, *pieces: str) -> "Post":
        self.paragraphs.append(list(pieces))
        return self

    def text(self, text: str) -> str:
        for name in EMOJI_NAMES:
            if f":{name}:" in text and name not in self.emojis:
                self.emojis.append(name)
        return esc(text)

    def mention(self, account: dict) -> str:
        if account not in self.mentions:
            self.mentions.append(account)
        return mention_html(account)

    def tag(self, name: str) -> str:
        if name.lower() not in (t.lower() for t in self.tags):
            self.tags.append(name)
        return hashtag_html(name)

    def html(self) -> str:
        return "".join(f"<p>{''.join(p)}</p>" for p in self.paragraphs)


def text_post(*lines: str) -> Post:
    post = Post()
    post.para("<br />".join(post.text(line) for line in lines))
    return post


SENTENCES = [
    "Spent the morning repotting the basil and it already looks happier.",
    "The bakery on the corner finally brought back the rye loaf.",
    "Reminder to drink some water & stretch your shoulders.",
    "Trying a new pour-over ratio today: 1 to 16, slow and steady.",
    "The train was late again, so I read three chapters instead.",
    "Fixed the squeaky door hinge with a drop of oil. Small victories!",
    "Our community garden meets on Saturday; bring gloves if you have them.",
    "The river path is flooded past the second bridge, take the upper trail.",
    "Just learned that octopuses taste with their arms. Wild.",
    "Made soup from whatever was left in the fridge and it was <3 great.",
    "Anyone else find that \"quick fixes\" take the whole afternoon?",
    "Swapped my desk lamp for a warmer bulb and my eyes thank me.",
    "Saw a heron standing perfectly still in the canal for ten minutes.",
    "Sketching every day this month, even if it is just a cup.",
    "The library extended its hours, which is lovely news for students.",
    "Planting tomatoes a week early this year; wish me luck.",
    "Cleaned the keyboard and found enough crumbs for a sandwich.",
    "Listening to rain on the skylight while the kettle warms up.",
    "New bike lights arrived, so evening rides are back on.",
    "Finished the jigsaw puzzle. One piece missing, naturally.",
]

TAGS = [
    "photography", "gardening", "caturday", "books", "baking", "cycling",
    "opensource", "music", "hiking", "coffee", "birds", "sketching",
]

LINKS = [
    "https://example.org/blog/2025/03/notes-on-soil-ph-and-raised-beds",
    "https://example.net/recipes/rye-sourdough",
    "https://example.com/about",
    "https://example.org/events/spring-cleanup?ref=timeline",
    "https://example.net/photos/albums/canal-walk-march",
]

WORLD = [
    ("ja", "kenji", ["おはようございます！今日は天気がいいですね。", "散歩に行ってきます。"], "写真"),
    ("ja", "kenji", ["新しいキーボードが届いた。打ち心地がとても良い。"], None),
    ("el", "nikos", ["Καλημέρα! Σήμερα ο καιρός είναι υπέροχος.", "Πάμε για καφέ;"], None),
    ("el", "nikos", ["Διαβάζω ένα καλό βιβλίο για την ιστορία της θάλασσας."], "books"),
    ("ru", "olga_v", ["Доброе утро! Сегодня отличная погода для прогулки."], None),
    ("uk", "olga_v", ["Сьогодні вперше пекла хліб, вийшло смачно."], "baking"),
    ("hi", "devika", ["नमस्ते! आज मौसम बहुत अच्छा है।"], None),
    ("hi", "devika", ["मैंने आज एक नई किताब पढ़ना शुरू किया।"], "books"),
    ("ar", "hala", ["صباح الخير! الطقس جميل اليوم."], None),
    ("ar", "hala", ["أقرأ كتابًا جديدًا عن تاريخ العلوم."], "books"),
    ("he", "yossi", ["בוקר טוב! מזג האוויר נפלא היום."], None),
    ("he", "yossi", ["סיימתי לבנות מדף חדש לספרים."], "woodworking"),
    ("zh", "chen_li", ["今天在公园里看到了很多樱花。"], "photography"),
]

CONTENT_WARNINGS = [
    "food", "long post about moving house", "eye contact", "spoilers for a novel",
    "local politics", "medical (mild)", "bugs (the insect kind)",
]

ALT_TEXTS = [None, "A blurry photo of a canal at dusk.", "Close-up of a basil leaf."]

EDIT_NOTES = ["Edit: fixed a typo.", "Edit: added the link.", "Edit: clarified the time."]

NASTY = [
    '<p>Totally normal post<script>alert("pwned")</script></p>',
    '<p onclick="steal(document.cookie)">Click anywhere on this post!</p>',
    '<p>Free stickers: <a href="javascript:alert(1)">claim here</a></p>',
    '<p>Look<img src="x" onerror="alert(2)"> at this</p>'
    '<iframe src="https://example.net/embed"></iframe>',
    '<p style="position:fixed;top:0;left:0;width:100%;height:100%">cover</p>'
    '<style>body{display:none}</style>',
]


# --- statuses ---------------------------------------------------------------


def media(status_id: str, account: dict, description: str | None) -> dict:
    media_id = ids.at(int(status_id) >> 16)
    name = token()
    local = domain_of(account) == LOCAL
    base = f"https://{LOCAL}/system/{'' if local else 'cache/'}"
    path = media_path("media_attachments/files", media_id)
    width, height = rng.choice([(1600, 1200), (1200, 1600), (2048, 1152)])
    remote = None
    if not local:
        remote = f"https://{domain_of(account)}/media/{token(24)}.jpg"
    return {
        "id": media_id,
        "type": "image",
        "url": f"{base}{path}/original/{name}.jpg",
        "preview_url": f"{base}{path}/small/{name}.jpg",
        "remote_url": remote,
        "preview_remote_url": None,
        "text_url": None,
        "meta": {
            "original": {
                "width": width,
                "height": height,
                "size": f"{width}x{height}",
                "aspect": round(width / height, 6),
            },
            "small": {
                "width": width // 4,
                "height": height // 4,
                "size": f"{width // 4}x{height // 4}",
                "aspect": round(width / height, 6),
            },
        },
        "description": description,
        "blurhash": "U" + token(27),
    }


def status(
    status_id: str,
    created_ms: int,
    account: dict,
    post: Post | None,
    *,
    language: str | None = "en",
    spoiler: str = "",
    sensitive: bool = False,
    attachments: list[dict] | None = None,
    reply_to: dict | None = None,
    raw_html: str | None = None,
    reblog: dict | None = None,
) -> dict:
    domain = domain_of(account)
    local = domain == LOCAL
    username = account["username"]
    if reblog is None:
        uri = f"https://{domain}/users/{username}/statuses/{status_id if local else token(18)}"
        url = f"https://{domain}/@{username}/{uri.rsplit('/', 1)[1]}"
    else:
        uri = f"https://{domain}/users/{username}/statuses/{status_id}/activity"
        url = uri if local else None
    content = raw_html if raw_html is not None else (post.html() if post else "")
    entities = post or Post()
    value = {
        "id": status_id,
        "created_at": iso(created_ms),
        "in_reply_to_id": reply_to["id"] if reply_to else None,
        "in_reply_to_account_id": reply_to["account"]["id"] if reply_to else None,
        "sensitive": sensitive,
        "spoiler_text": spoiler,
        "visibility": "public",
        "language": None if reblog else language,
        "uri": uri,
        "url": url,
        "replies_count": rng.choice([0, 0, 0, 1, 2, 5]),
        "reblogs_count": rng.choice([0, 0, 1, 3, 12]),
        "favourites_count": rng.choice([0, 1, 2, 4, 9, 31]),
        "edited_at": None,
        "content": content,
        "reblog": reblog,
    }
    if local:
        value["application"] = {"name": "Web", "website": None}
    value.update(
        {
            "account": account,
            "media_attachments": attachments or [],
            "mentions": [
                {"id": m["id"], "username": m["username"], "url": m["url"], "acct": m["acct"]}
                for m in entities.mentions
            ],
            "tags": [{"name": t.lower(), "url": tag_url(t.lower())} for t in entities.tags],
            "emojis": [emoji(code, domain) for code in entities.emojis],
            "card": None,
            "poll": None,
        }
    )
    return value


def plain_post() -> Post:
    post = Post()
    sentences = rng.sample(SENTENCES, rng.randint(1, 3))
    pieces = [post.text(" ".join(sentences))]
    if rng.random() < 0.35:
        pieces.append(" " + post.tag(rng.choice(TAGS)))
    if rng.random() < 0.15:
        pieces.append(" " + post.text(f":{rng.choice(EMOJI_NAMES)}:"))
    post.para(*pieces)
    if rng.random() < 0.2:
        post.para(post.text("More here: "), link_html(rng.choice(LINKS)))
    return post


FILLERS = ["Anyway.", "More soon.", "That is all.", "Onwards!", "Cheers.", "Yes.", "Ok."]


def long_post() -> Post:
    """A post a few characters short of Mastodon's default 500-character limit."""
    post = Post()
    tag = rng.choice(TAGS)
    budget = 498 - len(f"#{tag} #longpost")
    text = ""
    pool = SENTENCES[:]
    rng.shuffle(pool)
    for sentence in pool + FILLERS:
        if len(text) + len(sentence) + 1 <= budget:
            text = f"{text} {sentence}".strip()
    post.para(post.text(text))
    post.para(post.tag(tag), " ", post.tag("longpost"))
    return post


def mention_post(author: dict, target: dict, other: dict | None) -> Post:
    post = Post()
    pieces = [post.mention(target), " "]
    pieces.append(post.text(rng.choice(["Thanks for the tip! ", "Agreed. ", "Ha, same here. "])))
    if other:
        pieces += [post.text("cc "), post.mention(other), " "]
    pieces.append(post.text(rng.choice(SENTENCES)))
    post.para(*pieces)
    return post


def world_post(lines: list[str], tag: str | None, extra: dict | None) -> Post:
    post = Post()
    pieces = ["<br />".join(post.text(line) for line in lines)]
    if tag:
        pieces += [" ", post.tag(tag)]
    post.para(*pieces)
    if extra:
        post.para(post.mention(extra), " ", post.text(":sparkles_blue:"))
    return post


# --- the stream -------------------------------------------------------------


def dumps(payload: dict) -> str:
    text = json.dumps(payload, ensure_ascii=False, separators=(",", ":"))
    return text.replace("<", "\\u003c").replace(">", "\\u003e").replace("&", "\\u0026")


class Stream:
    def __init__(self) -> None:
        self.out: list[str] = [":)\n"]
        self.clock = to_ms(START)
        self.next_beat = self.clock + HEARTBEAT_MS
        self.posted: list[dict] = []
        self.deleted: set[str] = set()
        self.counts = {"update": 0, "status.update": 0, "delete": 0, "heartbeat": 0}

    def tick(self) -> int:
        self.clock += rng.randint(150, 2600)
        while self.clock >= self.next_beat:
            self.out.append(":thump\n")
            self.counts["heartbeat"] += 1
            self.next_beat += HEARTBEAT_MS
        return self.clock

    def event(self, name: str, data: str) -> None:
        self.out.append(f"event: {name}\ndata: {data}\n\n")
        self.counts[name] += 1

    def update(self, value: dict) -> None:
        self.event("update", dumps(value))
        if value["reblog"] is None:
            self.posted.append(value)

    def live(self) -> list[dict]:
        return [s for s in self.posted if s["id"] not in self.deleted]


def recipes() -> list[tuple]:
    items: list[tuple] = [("plain",)] * REGULAR_POSTS
    items += [("world", w) for w in WORLD]
    items += [("long",)] * 8
    items += [("cw", cw) for cw in CONTENT_WARNINGS]
    items += [("sensitive_media",)] * 6
    items += [("media",)] * 10
    items += [("nasty", n) for n in NASTY]
    items += [("reply",)] * 25
    items += [("weather",)] * 4
    rng.shuffle(items)
    return items


def build() -> Stream:
    stream = Stream()
    for recipe in recipes():
        now = stream.tick()
        roll = rng.random()
        if roll < 0.06 and len(stream.live()) > 5:
            emit_delete(stream, now)
            now = stream.tick()
        elif roll < 0.11 and len(stream.live()) > 5:
            emit_edit(stream, now)
            now = stream.tick()
        elif roll < 0.19:
            emit_boost(stream, now)
            now = stream.tick()
        emit_recipe(stream, recipe, now)

    # Deletes of statuses the recording never saw, as a real stream has.
    for _ in range(3):
        now = stream.tick()
        stale = old_id(now - rng.randrange(1, 90) * 86_400_000)
        stream.event("delete", stale)
    return stream


def emit_recipe(stream: Stream, recipe: tuple, now: int) -> None:
    kind = recipe[0]
    author = rng.choice(ORDINARY)
    sid = ids.at(now)
    if domain_of(author) != LOCAL:
        now -= rng.randint(100, 1800)

    if kind == "plain":
        value = status(sid, now, author, plain_post())
    elif kind == "world":
        language, username, lines, tag = recipe[1]
        extra = rng.choice(ORDINARY) if rng.random() < 0.4 else None
        post = world_post(lines, tag, extra)
        value = status(sid, now, BY_NAME[username], post, language=language)
    elif kind == "long":
        value = status(sid, now, author, long_post())
    elif kind == "cw":
        post = plain_post()
        value = status(sid, now, author, post, spoiler=recipe[1], sensitive=True)
    elif kind in ("sensitive_media", "media"):
        sensitive = kind == "sensitive_media"
        count = rng.randint(1, 4 if sensitive else 2)
        alt = [rng.choice(ALT_TEXTS) for _ in range(count)]
        attachments = [media(sid, author, a) for a in alt]
        post = text_post(rng.choice(SENTENCES))
        post.para(post.tag("photography"))
        spoiler = rng.choice(["", "spiders", "medical photo"]) if sensitive else ""
        value = status(sid, now, author, post, sensitive=sensitive, spoiler=spoiler,
                       attachments=attachments)
    elif kind == "nasty":
        value = status(sid, now, BY_NAME["oddserver"], None, raw_html=recipe[1])
    elif kind == "reply":
        live = stream.live()
        parent = rng.choice(live[-30:]) if live else None
        if parent is None or parent["account"] is author:
            value = status(sid, now, author, plain_post())
        else:
            other = rng.choice(ORDINARY) if rng.random() < 0.3 else None
            if other in (author, parent["account"]):
                other = None
            post = mention_post(author, parent["account"], other)
            value = status(sid, now, author, post, reply_to=parent)
    elif kind == "weather":
        bot = BY_NAME["weatherbot"]
        temp = rng.randint(3, 17)
        post = text_post(f"Forecast for today: {temp}°C, light wind from the west.",
                         "Sunrise 06:12, sunset 18:03.")
        post.para(post.tag("weather"))
        value = status(sid, now, bot, post)
    else:
        raise ValueError(kind)
    stream.update(value)


def emit_delete(stream: Stream, now: int) -> None:
    victim = rng.choice(stream.live())
    stream.deleted.add(victim["id"])
    stream.event("delete", victim["id"])


def emit_edit(stream: Stream, now: int) -> None:
    original = rng.choice(stream.live()[-40:])
    edited = json.loads(json.dumps(original))
    edited["edited_at"] = iso(now)
    note = rng.choice(EDIT_NOTES)
    edited["content"] = original["content"] + f"<p>{esc(note)}</p>"
    edited["favourites_count"] += rng.randint(0, 3)
    stream.event("status.update", dumps(edited))


def emit_boost(stream: Stream, now: int) -> None:
    booster = rng.choice(ORDINARY)
    live = [s for s in stream.live() if s["account"] is not booster]
    if live and rng.random() < 0.5:
        inner = rng.choice(live[-50:])
    else:
        author = rng.choice([a for a in ORDINARY if a is not booster])
        created = now - rng.randrange(1, 72) * 3_600_000
        inner = status(old_id(created), created, author, plain_post())
    value = status(ids.at(now), now, booster, None, reblog=inner)
    stream.update(value)


def main() -> None:
    out = Path(sys.argv[1]) if len(sys.argv) > 1 else DEFAULT_OUT
    stream = build()
    out.parent.mkdir(parents=True, exist_ok=True)
    with out.open("w", encoding="utf-8", newline="\n") as handle:
        handle.write("".join(stream.out))
    summary = ", ".join(f"{count} {name}" for name, count in stream.counts.items())
    print(f"wrote {out}: {summary}")


if __name__ == "__main__":
    main()
