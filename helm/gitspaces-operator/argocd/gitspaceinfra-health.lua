-- Argo CD health check for gitspaces.dev/GitspaceInfra
-- (argocd-cm key resource.customizations.health.gitspaces.dev_GitspaceInfra; see README.md here).
--
-- It reads what the operator's infra controller writes (src/controllers/infra/reconciler.ts):
--   status.conditions   CredentialsValid, NetworkReady, PoolReady, GatewayReady and Ready, where
--                       Ready is False exactly when CredentialsValid or NetworkReady is False
--                       (then it carries that condition's reason and message), else True;
--                       GatewayReady is False when the gateway's certificate or /readyz is not right;
--                       PoolReady is False with reason BadSchedule when a pool schedule cannot be read
--   status.observedGeneration
-- While the infra is being deleted and Gitspaces still use it, Ready is False with reason InUse.
-- Argo CD runs custom checks in Lua 5.1 with the base and table libraries only (no string library),
-- so this script uses nothing else.

-- The conditions that decide Ready, in the order the controller checks them.
local BLOCKING = { "CredentialsValid", "NetworkReady" }

local function condition(status, ctype)
  if status.conditions == nil then return nil end
  for _, c in ipairs(status.conditions) do
    if c.type == ctype then return c end
  end
  return nil
end

-- "Type (Reason): message" for a condition.
local function describe(c)
  local s = c.type
  if c.reason ~= nil and c.reason ~= "" then s = s .. " (" .. c.reason .. ")" end
  if c.message ~= nil and c.message ~= "" then s = s .. ": " .. c.message end
  return s
end

local function health()
  local meta = obj.metadata or {}
  local status = obj.status

  if meta.deletionTimestamp ~= nil then
    local ready = status ~= nil and condition(status, "Ready") or nil
    if ready ~= nil and ready.reason == "InUse" then return "Progressing", "Deleting: " .. (ready.message or "") end
    return "Progressing", "Deleting"
  end
  if status == nil then
    return "Progressing", "Waiting for the controller"
  end
  if meta.generation ~= nil and (status.observedGeneration == nil or status.observedGeneration < meta.generation) then
    return "Progressing", "Waiting for the controller to observe generation " .. meta.generation
  end

  local ready = condition(status, "Ready")
  if ready ~= nil and ready.status == "True" then
    -- VMs can run, but nobody reaches them while the gateway or its certificate is not right.
    local gateway = condition(status, "GatewayReady")
    if gateway ~= nil and gateway.status == "False" then return "Degraded", describe(gateway) end
    -- A warm pool that is filling (or failing to fill) does not stop Gitspaces from running:
    -- still Healthy, but say so. A pool schedule that cannot be read is a spec error only a
    -- person can fix (the pool keeps its entry's own minReady meanwhile).
    local pool = condition(status, "PoolReady")
    if pool ~= nil and pool.status == "False" and pool.reason == "BadSchedule" then return "Degraded", describe(pool) end
    if pool ~= nil and pool.status == "False" then return "Healthy", "Ready; " .. describe(pool) end
    return "Healthy", ready.message or "Ready"
  end

  -- Name every blocking condition that is False.
  local failing = {}
  for _, ctype in ipairs(BLOCKING) do
    local c = condition(status, ctype)
    if c ~= nil and c.status == "False" then table.insert(failing, describe(c)) end
  end
  if #failing > 0 then return "Degraded", table.concat(failing, "; ") end
  if ready ~= nil and ready.status == "False" then return "Degraded", describe(ready) end
  return "Progressing", "Checking credentials and network"
end

local hs = {}
hs.status, hs.message = health()
return hs
