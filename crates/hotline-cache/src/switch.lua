-- Points the marker at a rebuilt generation; returns the generation it replaced ('' if none).
-- KEYS[1]: the marker hash. ARGV: generation, position, as_of_ms.
local old = redis.call('HGET', KEYS[1], 'gen') or ''
redis.call('HSET', KEYS[1], 'gen', ARGV[1], 'pos', ARGV[2], 'as_of', ARGV[3])
return old
