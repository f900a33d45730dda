-- Applies an ordered batch of status changes if the marker is at or past its start.
-- KEYS[1]: the marker hash.
-- ARGV: prefix, from, to, as_of_ms ('' when unknown), then (position, issuer, bucket, serial, value) per
-- change, value '' meaning good (the entry is removed).
-- Returns {'nomarker'}, {'gap', marker_position} or {'ok', marker_position}.
local m = redis.call('HMGET', KEYS[1], 'gen', 'pos', 'as_of')
if not m[1] then
  return {'nomarker'}
end
local gen, pos, as_of = m[1], tonumber(m[2]), tonumber(m[3])
local from, to = tonumber(ARGV[2]), tonumber(ARGV[3])
if pos < from then
  return {'gap', tostring(pos)}
end
for i = 5, #ARGV, 5 do
  if tonumber(ARGV[i]) > pos then
    local key = ARGV[1] .. ':g' .. gen .. ':' .. ARGV[i + 1] .. ':' .. ARGV[i + 2]
    if ARGV[i + 4] == '' then
      redis.call('HDEL', key, ARGV[i + 3])
    else
      redis.call('HSET', key, ARGV[i + 3], ARGV[i + 4])
    end
  end
end
if to >= pos then
  redis.call('HSET', KEYS[1], 'pos', to)
  pos = to
  if ARGV[4] ~= '' and tonumber(ARGV[4]) > as_of then
    redis.call('HSET', KEYS[1], 'as_of', ARGV[4])
  end
end
return {'ok', tostring(pos)}
