"""The two Lua scripts a service's store runs inside Redis (shared/store.py): the commit, one
atomic step per batch, and the fenced trim of the outbox after the relay published it."""

# The arguments: ARGV[1] "expected_version n_seen n_off n_up n_del n_quota", ARGV[2] the lease
# value, ARGV[3] the horizon ('' for none), ARGV[4] and ARGV[5] the batch's items (their lengths
# as 4-byte little-endian numbers, and their bytes end to end), ARGV[6] the outbox entry if there
# is one. The items, in order: (score, id) per seen id, (field, offset) per partition, (key, JSON)
# per record written, the keys deleted, (week, delta, cap, check) per quota change. Six arguments
# however large the batch: redis-py packs every argument in Python (about a microsecond each),
# the script cuts the items out of one string.
COMMIT = """
local lease = redis.call('GET', KEYS[5])
if lease ~= ARGV[2] then
  return {'fenced', lease or ''}
end
local expected, n_seen, n_off, n_up, n_del, n_quota =
  string.match(ARGV[1], '^(%d+) (%d+) (%d+) (%d+) (%d+) (%d+)$')
local current = tonumber(redis.call('GET', KEYS[1]) or '0')
if current ~= tonumber(expected) then
  return {'stale', tostring(current)}
end
n_seen, n_off, n_up, n_del, n_quota = tonumber(n_seen), tonumber(n_off), tonumber(n_up), tonumber(n_del), tonumber(n_quota)
local A, n, at, lengths, blob = {}, 0, 1, ARGV[4], ARGV[5]
for k = 1, #lengths, 4 do
  local b1, b2, b3, b4 = string.byte(lengths, k, k + 3)
  local stop = at + b1 + 256 * b2 + 65536 * b3 + 16777216 * b4
  n = n + 1
  A[n] = string.sub(blob, at, stop - 1)
  at = stop
end
local seen_floor = ARGV[3]
local seen_at = 1
local off_at = seen_at + 2 * n_seen
local up_at = off_at + 2 * n_off
local del_at = up_at + 2 * n_up
local quota_at = del_at + n_del
-- the cap first: a refused batch writes nothing
local caps = {}
for q = 0, n_quota - 1 do
  local i = quota_at + 4 * q
  local week = A[i]
  local delta = tonumber(A[i + 1])
  local cap = tonumber(A[i + 2])
  local held = redis.call('HMGET', KEYS[7], week .. '|live', week .. '|cap')
  local live = tonumber(held[1] or '0') + delta
  if A[i + 3] == '1' and delta > 0 and live > cap then
    return {'cap_exceeded', week, tostring(live), tostring(cap)}
  end
  if caps[week] == nil then caps[week] = held[2] end
end
-- one call per kind of write, in slices that unpack can hand over (pairs stay together)
local function each(command, key, from, count)
  local last = from + count - 1
  for i = from, last, 1000 do
    redis.call(command, key, unpack(A, i, math.min(i + 999, last)))
  end
end
each('ZADD', KEYS[3], seen_at, 2 * n_seen)
if seen_floor ~= '' then redis.call('ZREMRANGEBYSCORE', KEYS[3], '-inf', '(' .. seen_floor) end
each('HSET', KEYS[4], off_at, 2 * n_off)
each('HSET', KEYS[2], up_at, 2 * n_up)
each('HDEL', KEYS[2], del_at, n_del)
for q = 0, n_quota - 1 do
  local i = quota_at + 4 * q
  local week, cap = A[i], A[i + 2]
  redis.call('HINCRBY', KEYS[7], week .. '|live', tonumber(A[i + 1]))
  if caps[week] ~= cap then
    redis.call('HSET', KEYS[7], week .. '|cap', cap)
    caps[week] = cap
  end
end
local v = redis.call('INCR', KEYS[1])
if ARGV[6] then redis.call('RPUSH', KEYS[6], tostring(v) .. '|' .. ARGV[6]) end
return v
"""

# Drop the outbox entries the relay published (up to and including version `upto`), only while
# the caller still holds the lease: a stale relay must not trim what the new writer has not sent.
TRIM = """
if redis.call('GET', KEYS[1]) ~= ARGV[1] then
  return -1
end
local upto = tonumber(ARGV[2])
local n = 0
while true do
  local head = redis.call('LINDEX', KEYS[2], 0)
  if not head then break end
  local bar = string.find(head, '|', 1, true)
  if tonumber(string.sub(head, 1, bar - 1)) > upto then break end
  redis.call('LPOP', KEYS[2])
  n = n + 1
end
return n
"""
