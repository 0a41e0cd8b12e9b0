-- Argo CD health check for safeapp.dev/SafeJob (Lua 5.1, as in Argo CD's gopher-lua).
-- The operator reports kstatus conditions (Ready, Reconciling, Stalled), each carrying
-- the generation it describes. Precedence: not yet observed > Stalled > paused or
-- suspended > Ready.
local hs = {}

local generation = nil
if obj.metadata ~= nil then
  generation = obj.metadata.generation
end

-- A status written for an older generation describes a spec that is gone.
if obj.status == nil or obj.status.observedGeneration == nil
    or (generation ~= nil and generation ~= obj.status.observedGeneration) then
  hs.status = "Progressing"
  if generation ~= nil then
    hs.message = "Waiting for the operator to observe generation " .. tostring(generation)
  else
    hs.message = "Waiting for the operator to observe the object"
  end
  return hs
end

-- The current condition of a type, or nil: a condition stamped with an older
-- generation than the object's is stale and decides nothing.
local function condition(ctype)
  if type(obj.status.conditions) ~= "table" then
    return nil
  end
  for _, c in ipairs(obj.status.conditions) do
    if type(c) == "table" and c.type == ctype then
      if type(generation) == "number" and type(c.observedGeneration) == "number"
          and c.observedGeneration < generation then
        return nil
      end
      return c
    end
  end
  return nil
end

-- "reason: message", or whichever of the two is present.
local function describe(c)
  local reason = c.reason
  local message = c.message
  if reason ~= nil and reason ~= "" and message ~= nil and message ~= "" then
    return reason .. ": " .. message
  elseif message ~= nil and message ~= "" then
    return message
  elseif reason ~= nil and reason ~= "" then
    return reason
  end
  return c.type .. " is " .. tostring(c.status)
end

local stalled = condition("Stalled")
if stalled ~= nil and stalled.status == "True" then
  hs.status = "Degraded"
  hs.message = describe(stalled)
  return hs
end

local ready = condition("Ready")

-- paused: the operator changes nothing; suspend: the CronJob starts no new runs.
if obj.spec ~= nil and (obj.spec.paused == true or obj.spec.suspend == true) then
  hs.status = "Suspended"
  if ready ~= nil and ready.message ~= nil and ready.message ~= "" then
    hs.message = ready.message
  elseif obj.spec.paused == true then
    hs.message = "Paused: the operator changes nothing"
  else
    hs.message = "Suspended: no new runs are scheduled"
  end
  return hs
end

if ready ~= nil and ready.status == "True" then
  hs.status = "Healthy"
  hs.message = describe(ready)
  return hs
end

hs.status = "Progressing"
local reconciling = condition("Reconciling")
if reconciling ~= nil and reconciling.status == "True" then
  hs.message = describe(reconciling)
elseif ready ~= nil then
  hs.message = describe(ready)
else
  hs.message = "Waiting for conditions"
end
return hs
