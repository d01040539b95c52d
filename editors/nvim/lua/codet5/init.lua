-- codet5-lsp for Neovim: local AI inline completion from the codet5-lsp language server.
--
--   require("codet5").setup({ settings = { completionMode = "line" } })
--
-- See :help codet5.
local config = require("codet5.config")
local cursor = require("codet5.cursor")
local keymaps = require("codet5.keymaps")
local lsp = require("codet5.lsp")
local status = require("codet5.status")

local M = {}

---@type codet5.Options?
M.options = nil
local engine = nil ---@type table?  codet5.ghost or codet5.native

--- "native" (vim.lsp.inline_completion, 0.12+) or "plugin" (this plugin's extmarks).
---@param options codet5.Options
---@return "native"|"plugin"
function M.engine_for(options)
  local native = require("codet5.native").available()
  if options.engine == "native" or (options.engine == "auto" and native) then
    if native then
      return "native"
    end
    vim.notify('codet5: engine = "native" needs Neovim 0.12+, using the plugin\'s ghost text', vim.log.levels.WARN)
  end
  return "plugin"
end

local function on_attach(_, bufnr)
  if engine then
    engine.attach(bufnr)
  end
  cursor.attach(bufnr)
end

--- Start (or restart with new options) the client for the configured filetypes.
---@param opts codet5.Options|table|nil
function M.setup(opts)
  if vim.fn.has("nvim-0.10") ~= 1 then
    vim.notify("codet5: needs Neovim 0.10 or newer", vim.log.levels.ERROR)
    return
  end
  local options, errors = config.resolve(opts)
  for _, message in ipairs(errors) do
    vim.notify(message, options and vim.log.levels.WARN or vim.log.levels.ERROR)
  end
  if not options then
    return
  end
  if M.options then
    M.stop()
  end
  M.options = options
  status.notify = options.notify
  if M.engine_for(options) == "native" then
    engine = require("codet5.native")
  else
    engine = require("codet5.ghost")
    engine.debounce_ms = options.debounce_ms
    engine.auto_trigger = options.auto_trigger
    engine.request_on_insert_enter = options.request_on_insert_enter
  end
  engine.set_enabled(options.settings.enabled ~= false)
  status.set_enabled(options.settings.enabled ~= false)
  vim.api.nvim_set_hl(0, "Codet5Suggestion", { link = "Comment", default = true })
  keymaps.install(options.keys, M)
  lsp.start(options, on_attach)
end

--- Stop the clients and remove the keys.
function M.stop()
  keymaps.remove()
  for _, client in ipairs(lsp.clients()) do
    for bufnr in pairs(client.attached_buffers or {}) do
      if engine then
        engine.detach(bufnr)
      end
      cursor.detach(bufnr)
    end
  end
  lsp.stop()
end

--- Stop and start again with the same options.
function M.restart()
  if not M.options then
    return vim.notify('codet5: call require("codet5").setup() first', vim.log.levels.WARN)
  end
  M.setup(M.options)
end

-- Keys: each returns true when it did something, so that a mapping can fall back otherwise.

---@return boolean
function M.accept()
  return engine ~= nil and engine.accept("all")
end

---@return boolean
function M.accept_word()
  return engine ~= nil and engine.accept("word")
end

---@return boolean
function M.accept_line()
  return engine ~= nil and engine.accept("line")
end

---@return boolean
function M.dismiss()
  return engine ~= nil and engine.dismiss()
end

---@return boolean
function M.next()
  return engine ~= nil and engine.cycle(1)
end

---@return boolean
function M.prev()
  return engine ~= nil and engine.cycle(-1)
end

--- Turn completions on or off (here and on the server); nil flips them.
---@param enabled boolean?
function M.toggle(enabled)
  if enabled == nil then
    enabled = not status.enabled
  end
  status.set_enabled(enabled)
  if engine then
    engine.set_enabled(enabled)
  end
  if M.options then
    M.options.settings.enabled = enabled
  end
  lsp.change_settings({ enabled = enabled })
  vim.notify("codet5: completions " .. (enabled and "on" or "off"), vim.log.levels.INFO)
end

--- Change server settings at run time (camelCase keys, as in setup's `settings`).
---@param settings table
function M.configure(settings)
  if M.options then
    M.options.settings = vim.tbl_extend("force", M.options.settings, settings)
  end
  lsp.change_settings(config.server_settings({ settings = settings, daemon = M.options and M.options.daemon }))
end

local function current_client()
  local client = lsp.client(vim.api.nvim_get_current_buf())
  if not client then
    local state = status.current
    local why = state.state == "error" and (": " .. state.message) or ""
    vim.notify("codet5: no codet5-lsp client in this buffer" .. why, vim.log.levels.WARN)
  end
  return client
end

--- Ask the server to write the docstring of the function at the cursor (it edits the buffer).
function M.docstring()
  local client = current_client()
  if not client then
    return
  end
  local bufnr = vim.api.nvim_get_current_buf()
  local params = vim.lsp.util.make_position_params(0, client.offset_encoding)
  local command = "codet5.generateDocstring"
  lsp.execute(client, command, { params.textDocument.uri, params.position }, function(err)
    if err then
      vim.notify(lsp.describe_error(command, err), vim.log.levels.WARN)
    end
  end, bufnr)
end

--- "; last without a suggestion: <why> (<reason>, <file>:<line>)" from a `codet5.status` reply, or "".
---@param reply table
---@return string
function M.last_no_suggestion(reply)
  local recent = reply.noSuggestion and reply.noSuggestion.recent or {}
  local last = recent[#recent]
  if not last then
    return ""
  end
  local file = vim.fn.fnamemodify(vim.uri_to_fname(last.uri), ":t")
  return ("; last without a suggestion: %s (%s, %s:%d)"):format(last.message, last.reason, file, last.position.line + 1)
end

--- Show the model, its state, the typed-ahead cache counts and why the last request got no
--- suggestion (`codet5.status`).
function M.status()
  local client = current_client()
  if not client then
    return
  end
  lsp.execute(client, "codet5.status", nil, function(err, reply)
    if err then
      return vim.notify(lsp.describe_error("codet5.status", err), vim.log.levels.WARN)
    end
    local model = reply.model ~= "" and ("%s %s"):format(reply.model, status.where(reply)) or "no model"
    local message = (reply.message ~= "" and reply.message:lower() ~= reply.state) and (" (" .. reply.message .. ")") or ""
    local cache = reply.cache and ("; typed-ahead cache %d hits, %d misses"):format(reply.cache.hits, reply.cache.misses) or ""
    vim.notify(("codet5: %s%s, %s%s; completions %s%s"):format(reply.state, message, model, cache,
      status.enabled and "on" or "off", M.last_no_suggestion(reply)), vim.log.levels.INFO)
  end, vim.api.nvim_get_current_buf())
end

--- Statusline component: "" before setup, else e.g. "codet5: ready" or "codet5: loading (…)".
---@return string
function M.statusline()
  return status.statusline()
end

return M
