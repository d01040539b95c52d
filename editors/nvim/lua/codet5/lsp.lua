-- Starting or attaching the codet5-lsp client: vim.lsp.config/enable on 0.11+, vim.lsp.start on 0.10,
-- a spawned server over stdio or a daemon over TCP.
local config = require("codet5.config")
local status = require("codet5.status")

local M = {}

M.name = "codet5"
local group = vim.api.nvim_create_augroup("codet5.lsp", { clear = true })
local has_011 = vim.fn.has("nvim-0.11") == 1
local generation = 0 -- bumped by every start(): exits of older clients no longer change the state

--- A client method call that works on 0.10 (`client.request(...)`) and 0.11+ (`client:request(...)`).
---@return boolean ok, integer? request_id
function M.request(client, method, params, handler, bufnr)
  if has_011 then
    return client:request(method, params, handler, bufnr)
  end
  return client.request(method, params, handler, bufnr)
end

function M.notify(client, method, params)
  if has_011 then
    return client:notify(method, params)
  end
  return client.notify(method, params)
end

function M.cancel(client, request_id)
  if has_011 then
    return client:cancel_request(request_id)
  end
  return client.cancel_request(request_id)
end

---@param bufnr integer?
---@return vim.lsp.Client?
function M.client(bufnr)
  return vim.lsp.get_clients({ name = M.name, bufnr = bufnr })[1]
end

---@return vim.lsp.Client[]
function M.clients()
  return vim.lsp.get_clients({ name = M.name })
end

--- `connect` (a vim.lsp.rpc.connect() result) that adds `token`, when given, to `initialize`'s
--- initializationOptions as it is sent, so the token is in neither the client's config (which
--- :checkhealth vim.lsp prints) nor its logged init_params. When the daemon refuses the token,
--- `on_refused` is called instead of the client's initialize handler (whose failed assertion
--- would only print a stack trace) and the connection is closed.
---@param connect fun(dispatchers: table): table
---@param token string?
---@param on_refused fun()
function M.daemon_connect(connect, token, on_refused)
  return function(dispatchers)
    local rpc = connect(dispatchers)
    local request = rpc.request
    rpc.request = function(method, params, callback, ...)
      if method ~= "initialize" then
        return request(method, params, callback, ...)
      end
      if token then
        params = vim.tbl_extend("force", {}, params)
        params.initializationOptions = vim.tbl_extend("force", {}, params.initializationOptions or {}, { token = token })
      end
      return request(method, params, function(err, result)
        if err and M.is_token_refusal(err) then
          on_refused()
          rpc.terminate()
          return
        end
        return callback(err, result)
      end, ...)
    end
    return rpc
  end
end

--- Whether an initialize error is the daemon refusing this editor's token (wrong or missing).
---@param err any
---@return boolean
function M.is_token_refusal(err)
  return type(err) == "table" and err.code == -32600 and tostring(err.message):find("initializationOptions.token", 1, true) ~= nil
end

---@param session { refused: boolean }?  set when a daemon refused the token: the exit that follows says nothing more
local function client_config(options, cmd, on_attach, session)
  local mine = generation
  local settings = config.server_settings(options)
  local capabilities = vim.lsp.protocol.make_client_capabilities()
  capabilities.textDocument.inlineCompletion = { dynamicRegistration = false }
  capabilities.window = capabilities.window or {}
  capabilities.window.workDoneProgress = true
  return {
    name = M.name,
    cmd = cmd,
    filetypes = options.filetypes,
    root_markers = { ".git" },
    -- An empty Lua table would be encoded as a JSON list, which the server rejects.
    init_options = next(settings) and settings or vim.empty_dict(),
    capabilities = capabilities,
    handlers = {
      ["codet5/status"] = function(_, result)
        status.update(result or {})
      end,
    },
    on_init = function()
      if status.current.state == "starting" then
        status.update({ state = "idle", message = "connected" })
      end
    end,
    on_exit = function(code, signal)
      vim.schedule(function()
        if mine ~= generation or (session and session.refused) then
          return
        end
        if status.current.state == "starting" or code ~= 0 or (signal or 0) ~= 0 then
          status.fail(("codet5-lsp exited (code %s, signal %s) before it was stopped: see :LspLog and :checkhealth codet5"):format(code, signal))
        else
          status.update({ state = "stopped" })
        end
      end)
    end,
    on_attach = on_attach,
  }
end

--- Is the daemon there? Calls back with nil or a message, on the main loop.
---@param host string
---@param port integer
---@param callback fun(err: string?)
function M.probe(host, port, callback)
  local tcp = assert(vim.uv.new_tcp())
  local timer = assert(vim.uv.new_timer())
  local done = false
  local function finish(err)
    if done then
      return
    end
    done = true
    timer:stop()
    timer:close()
    if not tcp:is_closing() then
      tcp:close()
    end
    vim.schedule(function()
      callback(err)
    end)
  end
  timer:start(5000, 0, function()
    finish("timed out")
  end)
  local info = vim.uv.getaddrinfo(host, nil, { socktype = "stream" })
  local address = info and info[1] and info[1].addr or host
  tcp:connect(address, port, function(err)
    finish(err)
  end)
end

local function enable(options, cmd, on_attach, session)
  local cfg = client_config(options, cmd, on_attach, session)
  if has_011 then
    -- Assigned, not merged with vim.lsp.config(): a new setup() replaces the old options whole.
    vim.lsp.config[M.name] = cfg
    vim.lsp.enable(M.name)
    return
  end
  local function start(bufnr)
    vim.lsp.start(cfg, { bufnr = bufnr })
  end
  vim.api.nvim_create_autocmd("FileType", {
    group = group,
    pattern = options.filetypes,
    callback = function(args)
      start(args.buf)
    end,
  })
  for _, bufnr in ipairs(vim.api.nvim_list_bufs()) do
    if vim.api.nvim_buf_is_loaded(bufnr) and vim.tbl_contains(options.filetypes, vim.bo[bufnr].filetype) then
      start(bufnr)
    end
  end
end

--- Start (or connect to) the server for the configured filetypes.
---@param options codet5.Options
---@param on_attach fun(client: vim.lsp.Client, bufnr: integer)
function M.start(options, on_attach)
  generation = generation + 1
  local mine = generation
  status.update({ state = "starting", message = "" })
  if options.daemon then
    local host, port = config.parse_daemon(options.daemon.address)
    local token, token_err = config.daemon_token(options.daemon)
    if token_err then
      status.fail(token_err)
      return
    end
    M.probe(host, port, function(err)
      if mine ~= generation then
        return
      end
      if err then
        status.fail(("cannot connect to the codet5-lsp daemon at %s:%d (%s): start it with `codet5-lsp --tcp --port %d` or remove `daemon` from setup()"):format(host, port, err, port))
        return
      end
      local session = { refused = false }
      local connect = M.daemon_connect(vim.lsp.rpc.connect(host, port), token, function()
        session.refused = true
        vim.schedule(function()
          status.fail(("codet5: the daemon at %s refused this editor: the token is wrong or missing. Set `daemon = { address = %q, token_file = \"...\" }` in setup() to the daemon's token file, or $%s, then :Codet5Restart")
            :format(options.daemon.address, options.daemon.address, config.token_env))
        end)
      end)
      enable(options, connect, on_attach, session)
    end)
    return
  end
  if vim.fn.executable(options.cmd[1]) ~= 1 then
    status.fail(("cannot start the server: %q is not an executable on PATH. Install codet5-lsp or set `cmd` in require(\"codet5\").setup()"):format(options.cmd[1]))
    return
  end
  enable(options, options.cmd, on_attach)
end

--- Stop every codet5 client and forget the configuration (for restarts).
function M.stop()
  vim.api.nvim_clear_autocmds({ group = group })
  if has_011 then
    vim.lsp.enable(M.name, false)
  end
  for _, client in ipairs(M.clients()) do
    if has_011 then
      client:stop()
    else
      client.stop()
    end
  end
end

--- Send `workspace/didChangeConfiguration` with `settings` to every codet5 client.
---@param settings table
function M.change_settings(settings)
  for _, client in ipairs(M.clients()) do
    M.notify(client, "workspace/didChangeConfiguration", { settings = { codet5 = settings } })
  end
end

--- Run a server command (`workspace/executeCommand`) and call back with (err, result).
---@param client vim.lsp.Client
---@param command string
---@param arguments any[]?
---@param callback fun(err: table?, result: any)
function M.execute(client, command, arguments, callback, bufnr)
  M.request(client, "workspace/executeCommand", { command = command, arguments = arguments }, function(err, result)
    callback(err, result)
  end, bufnr)
end

--- A readable message for a failed server command.
---@param command string
---@param err table  the LSP ResponseError
---@return string
function M.describe_error(command, err)
  local message = tostring(err.message or err)
  local unknown = err.code == -32601
    or (err.code == -32602 and (message:find("not defined") or message:find("not found") or message:find("not registered")))
  if unknown then
    return ("codet5: this codet5-lsp server does not offer %q yet: update the codet5-lsp package and restart it"):format(command)
  end
  return ("codet5: %s failed: %s"):format(command, message)
end

return M
