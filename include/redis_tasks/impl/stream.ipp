// The bodies of stream.hpp (see ../stream.hpp): included by that header, or compiled once by
// redis_tasks/src.hpp when REDIS_TASKS_SEPARATE_COMPILATION is defined.
#pragma once

#include "../stream.hpp"

#include <nlohmann/json.hpp>

namespace redis_tasks {
inline namespace REDIS_TASKS_ABI {
namespace detail {

REDIS_TASKS_DECL const script& stream_add_script() {
  static const script s(R"lua(
local function older(a, b)
  local am, as = string.match(a, '^(%d+)-(%d+)$')
  local bm, bs = string.match(b, '^(%d+)-(%d+)$')
  if #am ~= #bm then return #am < #bm end
  if am ~= bm then return am < bm end
  if #as ~= #bs then return #as < #bs end
  return as < bs
end
local record = KEYS[2]
if record then
  local seen = redis.call('GET', record)
  if seen then return seen end
end
local id = redis.call('XADD', KEYS[1], '*', unpack(ARGV, 3))
if record then redis.call('SET', record, id, 'PX', ARGV[1]) end
if ARGV[2] ~= '' then
  local maxlen = tonumber(ARGV[2])
  local len = redis.call('XLEN', KEYS[1])
  local slack = math.max(math.floor(maxlen / 10), 100)
  if len > maxlen + slack then
    -- The oldest entry still pending in any group: nothing from it on goes. (Entries no group
    -- has read yet are not protected: maxlen is a cap, as in XADD MAXLEN.)
    local floor = nil
    for _, g in ipairs(redis.call('XINFO', 'GROUPS', KEYS[1])) do
      local name, pending = nil, 0
      for j = 1, #g, 2 do
        if g[j] == 'name' then name = g[j + 1] elseif g[j] == 'pending' then pending = g[j + 1] end
      end
      if name and pending > 0 then
        local first = redis.call('XPENDING', KEYS[1], name, '-', '+', 1)[1]
        if first and (not floor or older(first[1], floor)) then floor = first[1] end
      end
    end
    -- Only the entries before the floor are read (none while it is the first entry, as when a
    -- stalled consumer holds the oldest).
    local limit = len - maxlen
    local head = redis.call('XRANGE', KEYS[1], '-', floor and ('(' .. floor) or '+', 'COUNT',
                            limit + 1)
    if #head > limit then
      redis.call('XTRIM', KEYS[1], 'MINID', head[limit + 1][1])
    elseif #head > 0 and floor then
      redis.call('XTRIM', KEYS[1], 'MINID', floor)
    end
  end
end
return id
)lua");
  return s;
}

REDIS_TASKS_DECL const script& dead_letter_script() {
  static const script s(R"lua(
if not redis.call('XPENDING', KEYS[1], ARGV[1], ARGV[2], ARGV[2], 1)[1] then
  return 0  -- acknowledged meanwhile: nothing to move
end
local e = redis.call('XRANGE', KEYS[1], ARGV[2], ARGV[2])
local fields = {'id', ARGV[2], 'group', ARGV[1], 'reason', ARGV[3], 'deliveries', ARGV[4]}
if e[1] then
  if #e[1][2] > 7000 then  -- beyond what unpack takes: the fields as one JSON array
    fields[#fields + 1] = 'fields_json'
    fields[#fields + 1] = cjson.encode(e[1][2])
  else
    for _, v in ipairs(e[1][2]) do fields[#fields + 1] = v end
  end
end
redis.call('XADD', KEYS[2], '*', unpack(fields))
return redis.call('XACK', KEYS[1], ARGV[1], ARGV[2])
)lua");
  return s;
}

REDIS_TASKS_DECL const script& stream_claim_script() {
  static const script s(R"lua(
local r = redis.call('XAUTOCLAIM', KEYS[1], ARGV[1], ARGV[2], ARGV[3], ARGV[6], 'COUNT', ARGV[4])
local max = tonumber(ARGV[5])
local out = {}
for _, e in ipairs(r[2]) do
  if e then  -- (Redis 6.2 answers nil for an entry deleted while pending)
    local id = e[1]
    local p = redis.call('XPENDING', KEYS[1], ARGV[1], id, id, 1)
    local n = 1
    if p[1] then n = p[1][4] end
    if n > max then
      local fields = {'id', id, 'group', ARGV[1], 'reason',
                      'delivered ' .. n .. ' times; max_deliveries is ' .. max, 'deliveries', n}
      if #e[2] > 7000 then  -- beyond what unpack takes: the fields as one JSON array
        fields[#fields + 1] = 'fields_json'
        fields[#fields + 1] = cjson.encode(e[2])
      else
        for _, v in ipairs(e[2]) do fields[#fields + 1] = v end
      end
      redis.call('XADD', KEYS[2], '*', unpack(fields))
      redis.call('XACK', KEYS[1], ARGV[1], id)
    else
      out[#out + 1] = {id, e[2], n}
    end
  end
end
return {r[1], out, r[3] or {}}
)lua");
  return s;
}

}  // namespace detail
}  // namespace REDIS_TASKS_ABI
}  // namespace redis_tasks
