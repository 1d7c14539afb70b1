-- The writing desk: words for those who cannot see a news item's image, a
-- caption under it, and the issue's greeting line as a field of its own.

-- Alternative text and caption of a news item's image. An item with an image
-- must have its alt text (checked where items are written); items kept from
-- before get their title, which is what the feed import gives when a feed
-- says nothing about the picture.
ALTER TABLE news_items
    ADD COLUMN image_alt text,
    ADD COLUMN image_caption text;
UPDATE news_items SET image_alt = title WHERE image_url IS NOT NULL;

-- The line above the intro. The mail wrote "구독자님, 안녕하세요." on every
-- issue; drafts keep it, and an editor may change or empty it. A greeting
-- starting "구독자님" is addressed by name where the resident gave one.
ALTER TABLE issues ADD COLUMN greeting text NOT NULL DEFAULT '구독자님, 안녕하세요.';

-- "Who changed this draft last?" (an editor whose save came second is told).
CREATE INDEX audit_log_target ON audit_log (target, id) WHERE target IS NOT NULL;
