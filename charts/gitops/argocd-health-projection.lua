-- Argo CD health check for eventline.io/Projection (register it in argocd-cm under
-- resource.customizations.health.eventline.io_Projection; see charts/gitops/README.md).
--
-- Maps what the Eventline operator reports in status to an Argo CD health:
--   Progressing  no status yet; status older than the spec (observedGeneration < generation);
--                a replay pending or running; a replay requested but not picked up yet;
--                projector pods not all available yet (rollout, restart)
--   Degraded     the last reconciliation failed (condition Reconciled False, checked first);
--                phase Failed (the projector rollout is stuck); the Degraded condition is True
--                (ReplayFailed, ProgressDeadlineExceeded); the current replay request failed
--   Healthy      the Ready condition is True and nothing above applies
-- Tested by operator/tests/argocd_health.rs, which runs this file against sample statuses.

local hs = {}

local function progressing(message)
  hs.status = "Progressing"
  hs.message = message
  return hs
end

local function degraded(message)
  hs.status = "Degraded"
  hs.message = message
  return hs
end

if obj.status == nil then
  return progressing("Waiting for the operator to report a status")
end
local status = obj.status

local conditions = {}
if status.conditions ~= nil then
  for _, c in ipairs(status.conditions) do
    if c.type ~= nil then
      conditions[c.type] = c
    end
  end
end

-- The operator failed to reconcile (and keeps retrying): checked before the generation, since a
-- failing reconciliation never gets to observe the new one.
if conditions["Reconciled"] ~= nil and conditions["Reconciled"].status == "False" then
  hs.status = "Degraded"
  hs.message = conditions["Reconciled"].message or "The operator cannot reconcile this Projection"
  return hs
end

local generation = obj.metadata ~= nil and obj.metadata.generation or nil
if generation ~= nil and (status.observedGeneration == nil or status.observedGeneration < generation) then
  return progressing("Waiting for the operator to observe generation " .. tostring(generation))
end

local function is_true(name)
  return conditions[name] ~= nil and conditions[name].status == "True"
end

local function message_of(name, fallback)
  local c = conditions[name]
  if c ~= nil and c.message ~= nil and c.message ~= "" then
    return c.message
  end
  return fallback
end

local replay = status.replay or {}
local requested = nil
if obj.spec ~= nil and obj.spec.replay ~= nil then
  requested = obj.spec.replay.requestId
end

if status.phase == "Failed" then
  return degraded(message_of("Degraded", "The projector Deployment does not progress"))
end

if is_true("Degraded") then
  -- Some projector pods missing is what a rollout or a restart looks like; if it lasts, the
  -- Deployment's progress deadline turns it into ProgressDeadlineExceeded (phase Failed).
  if conditions["Degraded"].reason == "ProjectorPartiallyAvailable" then
    return progressing(message_of("Degraded", "Projector pods are starting"))
  end
  return degraded(message_of("Degraded", "The projection is degraded"))
end

if replay.phase == "Failed" and requested ~= nil and replay.requestId == requested then
  local why = replay.error or "the replay failed"
  return degraded("Replay " .. tostring(requested) .. " failed: " .. why)
end

if status.phase == "Replaying" or is_true("Replaying")
    or replay.phase == "Pending" or replay.phase == "Running" then
  local message = "Replay " .. tostring(replay.requestId or requested or "?") .. " " .. string.lower(replay.phase or "running")
  if replay.percent ~= nil then
    message = message .. string.format(" (%.1f%%)", replay.percent)
  end
  return progressing(message)
end

if requested ~= nil and replay.requestId ~= requested then
  return progressing("Replay " .. tostring(requested) .. " requested, not started yet")
end

if is_true("Ready") then
  hs.status = "Healthy"
  hs.message = message_of("Ready", "The projector is running")
  return hs
end

return progressing(message_of("Ready", "Waiting for projector pods"))
