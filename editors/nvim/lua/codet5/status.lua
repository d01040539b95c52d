-- The model's state from the server's `codet5/status` notifications: statusline text and notifications.
local M = {}

---@class codet5.Status
---@field state "starting"|"idle"|"loading"|"ready"|"error"|"stopped"
---@field message string
---@field model string
---@field device string
---@field computeType string
---@field runtime string

---@type codet5.Status
M.current = { state = "stopped", message = "", model = "", device = "", computeType = "", runtime = "" }
M.enabled = true
M.notify = true

local function emit()
  vim.api.nvim_exec_autocmds("User", { pattern = "Codet5Status", modeline = false })
  vim.cmd("redrawstatus")
end

---@param message string
---@param level integer
function M.say(message, level)
  if M.notify or level >= vim.log.levels.ERROR then
    vim.notify(message, level, { title = "codet5" })
  end
end

--- "on cpu (int8, onnxruntime)": where and how the model runs, as far as `status` says.
---@param status table  a status payload or `codet5.status` reply
---@return string
function M.where(status)
  local how = {}
  for _, part in ipairs({ status.computeType or "", status.runtime or "" }) do
    if part ~= "" then
      how[#how + 1] = part
    end
  end
  return ("on %s%s"):format(status.device or "", #how > 0 and (" (" .. table.concat(how, ", ") .. ")") or "")
end

--- Record a state change and tell the user about the ones that matter.
---@param status table  a `codet5/status` payload, or a client-side state
function M.update(status)
  local previous = M.current.state
  M.current = {
    state = status.state or "idle",
    message = status.message or "",
    model = status.model or "",
    device = status.device or "",
    computeType = status.computeType or "",
    runtime = status.runtime or "",
  }
  local state = M.current.state
  if state ~= previous then
    if state == "loading" then
      M.say(("codet5: loading %s: %s"):format(M.current.model, M.current.message), vim.log.levels.INFO)
    elseif state == "ready" and previous == "loading" then
      M.say(("codet5: %s ready %s"):format(M.current.model, M.where(M.current)), vim.log.levels.INFO)
    elseif state == "error" then
      M.say("codet5: " .. (M.current.message ~= "" and M.current.message or "the model failed to load"), vim.log.levels.ERROR)
    end
  end
  emit()
end

--- A failure on the client side (server missing, daemon unreachable, server exited).
---@param message string
function M.fail(message)
  M.update({ state = "error", message = message })
end

---@param enabled boolean
function M.set_enabled(enabled)
  M.enabled = enabled
  emit()
end

--- Short text for a statusline, e.g. `codet5: loading (converting to int8)`.
---@return string
function M.statusline()
  local s = M.current
  if s.state == "stopped" then
    return ""
  end
  if s.state == "loading" or s.state == "starting" then
    return s.message ~= "" and ("codet5: %s (%s)"):format(s.state, s.message) or ("codet5: " .. s.state)
  end
  if s.state == "ready" and not M.enabled then
    return "codet5: off"
  end
  return "codet5: " .. s.state
end

return M
