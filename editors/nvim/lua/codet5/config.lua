-- Options of require("codet5").setup(): defaults, validation and the server settings derived from them.
local M = {}

---@class codet5.Keys
---@field accept string|false       accept the whole suggestion
---@field accept_word string|false  accept the next word
---@field accept_line string|false  accept the rest of the line
---@field dismiss string|false      hide the suggestion until the text changes
---@field next string|false         next suggestion (or ask for one)
---@field prev string|false         previous suggestion

---@class codet5.Daemon
---@field address string          "host:port"
---@field token_file string|nil   a file holding the daemon's token; nil: $CODET5_LSP_TOKEN, if set

---@class codet5.Options
---@field cmd string[]                    the server command (stdio)
---@field daemon codet5.Daemon|nil       a running `codet5-lsp --tcp` daemon ("host:port" or a table); nil: spawn `cmd`
---@field filetypes string[]              filetypes the server attaches to
---@field settings table<string, any>     server settings (camelCase, as in the server's docs)
---@field engine "auto"|"native"|"plugin" ghost text: native vim.lsp.inline_completion (0.12+) or this plugin's
---@field debounce_ms integer             wait this long after a keystroke before asking (0: ask at once; the server's debounceMs waits)
---@field auto_trigger boolean            ask while typing (else only with the `next` key)
---@field request_on_insert_enter boolean  with auto_trigger: ask on entering insert mode too (plugin engine)
---@field notify boolean                  notify model loading, ready and errors
---@field keys codet5.Keys
M.defaults = {
  cmd = { "codet5-lsp" },
  daemon = nil,
  filetypes = {
    "python", "javascript", "javascriptreact", "typescript", "typescriptreact",
    "java", "go", "rust", "c", "cpp", "lua", "sh",
  },
  settings = {},
  engine = "auto",
  debounce_ms = 0,
  auto_trigger = true,
  request_on_insert_enter = true,
  notify = true,
  keys = {
    accept = "<Tab>",
    accept_word = "<M-Right>",
    accept_line = "<M-C-Right>",
    dismiss = "<C-]>",
    next = "<M-]>",
    prev = "<M-[>",
  },
}

--- Every setting the server takes (lsp_server/config.py; tests/test_config.py keeps them equal).
M.server_setting_names = {
  "model", "device", "computeType", "runtime", "threads", "contextTokens", "maxNewTokens", "completionMode",
  "enabled", "disabledLanguages", "localFilesOnly", "trustRemoteCode", "maxCachedPrompts", "draftTokens", "summaryModel",
  "debounceMs", "timeBudgetMs", "speculative", "prewarm", "otherFiles", "summaryIdleUnloadS", "promptCacheIdleReleaseS",
}

--- Settings that choose and load the model, or say when it frees memory: a daemon takes them from its own command line.
M.model_settings = {
  model = true, device = true, computeType = true, runtime = true, threads = true,
  localFilesOnly = true, trustRemoteCode = true, maxCachedPrompts = true, draftTokens = true,
  summaryIdleUnloadS = true, promptCacheIdleReleaseS = true,
}

---@param address string
---@return string? host, integer? port, string? err
function M.parse_daemon(address)
  local host, port = address:match("^%[([^%]]+)%]:(%d+)$")
  if not host then
    host, port = address:match("^([^:]*):(%d+)$")
  end
  if not host then
    port = address:match("^(%d+)$")
    host = port and ""
  end
  port = tonumber(port)
  if not host or not port or port < 1 or port > 65535 then
    return nil, nil, ("codet5: daemon must look like \"127.0.0.1:2087\", got %q"):format(address)
  end
  return host ~= "" and host or "127.0.0.1", port, nil
end

M.token_env = "CODET5_LSP_TOKEN"

--- The daemon's token: the contents of `daemon.token_file` (surrounding whitespace removed) when
--- set, else $CODET5_LSP_TOKEN, else nil. The error names the option and the path, never the token.
---@param daemon codet5.Daemon
---@return string? token, string? err
function M.daemon_token(daemon)
  if not daemon.token_file or daemon.token_file == "" then
    local env = vim.env[M.token_env]
    return env ~= "" and env or nil, nil
  end
  local path = vim.fn.expand(daemon.token_file)
  local handle, open_err = io.open(path, "r")
  if not handle then
    return nil, ("codet5: cannot read daemon.token_file %s (%s)"):format(path, open_err)
  end
  local token = vim.trim(handle:read("*a") or "")
  handle:close()
  if token == "" then
    return nil, ("codet5: daemon.token_file %s is empty"):format(path)
  end
  return token, nil
end

local function is(kind)
  return function(value)
    return type(value) ~= kind and ("must be a " .. kind) or nil
  end
end

local checks = {
  cmd = is("table"),
  daemon = function(value)
    if value == nil or type(value) == "string" then
      return nil
    end
    local shape = 'must be "host:port" or { address = "host:port", token_file = "path" }'
    if type(value) ~= "table" or type(value.address) ~= "string" then
      return shape
    end
    for key, field in pairs(value) do
      if (key ~= "address" and key ~= "token_file") or type(field) ~= "string" then
        return shape
      end
    end
    return nil
  end,
  filetypes = is("table"),
  settings = is("table"),
  engine = function(value)
    return not vim.tbl_contains({ "auto", "native", "plugin" }, value) and 'must be "auto", "native" or "plugin"' or nil
  end,
  debounce_ms = is("number"),
  auto_trigger = is("boolean"),
  request_on_insert_enter = is("boolean"),
  notify = is("boolean"),
  keys = is("table"),
}

---@param opts table?
---@return codet5.Options? options, string[] errors
function M.resolve(opts)
  opts = opts or {}
  local errors = {}
  for key in pairs(opts) do
    if M.defaults[key] == nil and key ~= "daemon" then
      table.insert(errors, ("codet5: unknown option %q (ignored)"):format(key))
    end
  end
  local options = vim.tbl_deep_extend("force", vim.deepcopy(M.defaults), opts)
  local invalid = false
  for key, check in pairs(checks) do
    local problem = check(options[key])
    if problem then
      invalid = true
      table.insert(errors, ("codet5: option %s %s, got %s"):format(key, problem, vim.inspect(options[key])))
    end
  end
  if invalid then
    return nil, errors
  end
  for key in pairs(options.settings) do
    if not vim.tbl_contains(M.server_setting_names, key) then
      table.insert(errors, ("codet5: unknown server setting %q (ignored); the server takes %s"):format(
        key, table.concat(M.server_setting_names, ", ")))
      options.settings[key] = nil
    end
  end
  if #options.cmd == 0 then
    table.insert(errors, "codet5: cmd must name the server executable")
    return nil, errors
  end
  if type(options.daemon) == "string" then
    options.daemon = { address = options.daemon }
  end
  if options.daemon then
    local _, _, daemon_err = M.parse_daemon(options.daemon.address)
    if daemon_err then
      table.insert(errors, daemon_err)
      return nil, errors
    end
  end
  return options, errors
end

--- The settings sent to the server: what the user set, without the model's when a daemon owns it.
---@param options codet5.Options
---@return table
function M.server_settings(options)
  local settings = {}
  for key, value in pairs(options.settings) do
    if not (options.daemon and M.model_settings[key]) then
      settings[key] = value
    end
  end
  return settings
end

return M
