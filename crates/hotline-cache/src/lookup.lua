-- Reads the marker and the entries of every key asked, atomically.
-- KEYS[1]: the marker hash. ARGV[1]: key prefix; then (issuer, bucket, serial) triples.
-- Returns {} when there is no marker, else {generation, position, as_of_ms, value or '' per key}.
local m = redis.call('HMGET', KEYS[1], 'gen', 'pos', 'as_of')
if not m[1] then
  return {}
end
local out = {m[1], m[2], m[3]}
for i = 2, #ARGV, 3 do
  local key = ARGV[1] .. ':g' .. m[1] .. ':' .. ARGV[i] .. ':' .. ARGV[i + 1]
  out[#out + 1] = redis.call('HGET', key, ARGV[i + 2]) or ''
end
return out
