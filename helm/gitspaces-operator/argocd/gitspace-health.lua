-- Argo CD health check for gitspaces.dev/Gitspace
-- (argocd-cm key resource.customizations.health.gitspaces.dev_Gitspace; see README.md here).
--
-- It reads what the operator's runner writes (src/controllers/runner/decide.ts, reconciler.ts):
--   spec.state          desired state: Running (the default) or Stopped
--   status.phase        Pending, Provisioning, Starting, Running, Stopping, Stopped, Archived, Deleting, Failed
--   status.message      why the Gitspace is in this phase
--   status.conditions   InstanceProvisioned, InstanceReady, IDEReady and Ready; Ready sums them up
--   status.observedGeneration
--   status.autoStopped  set while an idle stop stands (the spec still says Running: the operator
--                       never writes spec, so Argo CD sees no drift)
-- Argo CD runs custom checks in Lua 5.1 with the base and table libraries only (no string library),
-- so this script uses nothing else.

-- Ready reasons that need a person: a fix to the spec, the GitspaceInfra, a Secret or the cloud
-- quota. The operator keeps retrying, but nothing changes until someone acts. Every other
-- not-Ready reason (Creating, Booting, Starting, AgentNotConnected, SettingUp, ProviderError,
-- EnrolmentFailed, ...) is on its way somewhere.
local NEEDS_ACTION = {
  StepFailed = true,                -- a devcontainer set-up step failed (phase Failed)
  InvalidConfig = true,             -- the cloud rejected the spec, e.g. an unknown machineType (phase Failed)
  InfraNotFound = true,             -- spec.infraRef names no (or a deleted) GitspaceInfra
  CredentialsInvalid = true,        -- the infra's cloud credentials are invalid
  CredentialsSecretNotFound = true, -- spec.repository.credentialsSecretRef names a missing Secret
  CredentialsSecretInvalid = true,  -- ... or one without a password or token key
  CredentialsSecretRefused = true,  -- ... or one not of type gitspaces.dev/git-credentials
  EnrolmentRefused = true,          -- the VM's cloud labels or its agent do not name this Gitspace
  QuotaExceeded = true,             -- the cloud's quota or capacity, or the infra's spec.quotas, is used up:
                                    -- someone must stop a Gitspace or raise the quota
}

local function condition(status, ctype)
  if status.conditions == nil then return nil end
  for _, c in ipairs(status.conditions) do
    if c.type == ctype then return c end
  end
  return nil
end

-- "label: detail", or just the label when there is no detail.
local function say(label, detail)
  if detail == nil or detail == "" then return label end
  return label .. ": " .. detail
end

local function health()
  local meta = obj.metadata or {}
  local spec = obj.spec or {}
  local status = obj.status

  if meta.deletionTimestamp ~= nil then
    return "Progressing", "Deleting the instance"
  end
  if status == nil or status.phase == nil then
    return "Progressing", "Waiting for the controller"
  end
  if meta.generation ~= nil and (status.observedGeneration == nil or status.observedGeneration < meta.generation) then
    return "Progressing", "Waiting for the controller to observe generation " .. meta.generation
  end

  local phase = status.phase
  local desired = spec.state or "Running"
  -- The idle timeout stopped it at this generation and nobody has woken it (a spec change starts it
  -- again; so does the gitspaces.dev/wake annotation, which the operator clears this field for).
  local auto = status.autoStopped
  if desired == "Running" and auto ~= nil and auto.generation == meta.generation then
    desired = "Stopped"
  end
  local ready = condition(status, "Ready")
  local why = status.message
  if (why == nil or why == "") and ready ~= nil then why = ready.message end

  -- Errors first: a stopped or running Gitspace whose infra broke is still broken.
  if phase == "Failed" then
    return "Degraded", say((ready ~= nil and ready.status == "False" and ready.reason) or "Failed", why)
  end
  if ready ~= nil and ready.status == "False" and NEEDS_ACTION[ready.reason] then
    return "Degraded", say(ready.reason, ready.message or why)
  end
  if phase == "Deleting" then
    return "Progressing", say("Deleting", why)
  end

  if desired == "Stopped" then
    -- Stopped on purpose or by the idle timeout: the VM and its disk are kept.
    if phase == "Stopped" then return "Suspended", say("Stopped", why) end
    -- Stopped past deleteAfterStopped: the VM and disk are gone, the Gitspace can be started again.
    if phase == "Archived" then return "Suspended", say("Archived", why) end
    if phase == "Stopping" then return "Progressing", say("Stopping", why) end
    return "Progressing", say(phase .. " (desired Stopped)", why)
  end

  if phase == "Running" and ready ~= nil and ready.status == "True" then
    return "Healthy", "Running"
  end
  if phase == "Stopped" or phase == "Stopping" then
    return "Progressing", say(phase .. " (desired Running)", why)
  end
  -- Pending, Provisioning, Starting, or Running but not (yet) Ready.
  return "Progressing", say(phase, why)
end

local hs = {}
hs.status, hs.message = health()
return hs
