-- Test harness, run inside `nvim --headless --clean -l`: drives a second, embedded Neovim over
-- msgpack-RPC (as a user at a keyboard: keys go through nvim_input, so mappings, insert mode
-- and autocommands behave as they do for a person) and the real codet5-lsp server.
local H = {}

H.plugin_root = vim.fn.fnamemodify(debug.getinfo(1, "S").source:sub(2), ":p:h:h")

--- CODET5_TEST_SERVER: the server command as a JSON list; CODET5_TEST_MODEL: the tiny model.
H.server = vim.json.decode(os.getenv("CODET5_TEST_SERVER") or "null")
H.model = os.getenv("CODET5_TEST_MODEL")

--- The server command with the tiny model on one thread.
---@param extra string[]?
function H.server_cmd(extra)
  assert(H.server and H.model, "set CODET5_TEST_SERVER and CODET5_TEST_MODEL")
  return vim.list_extend(vim.list_extend(vim.deepcopy(H.server), { "--model", H.model, "--threads", "1" }), extra or {})
end

---@class codet5.test.Child
---@field chan integer
local Child = {}
Child.__index = Child

--- A fresh embedded Neovim with the plugin on its runtimepath and vim.notify recorded in _G.notes.
---@return codet5.test.Child
function H.child()
  local chan = vim.fn.jobstart({
    vim.v.progpath, "--embed", "--headless", "--clean", "-n", "-i", "NONE",
    "--cmd", "set rtp^=" .. vim.fn.fnameescape(H.plugin_root),
  }, { rpc = true })
  assert(chan > 0, "could not start the child Neovim")
  local child = setmetatable({ chan = chan }, Child)
  child:lua([[
    _G.notes = {}
    vim.notify = function(message, level) table.insert(_G.notes, { message = message, level = level or 2 }) end
    vim.o.columns, vim.o.lines = 120, 40
  ]])
  return child
end

--- Run Lua in the child and return its value (nil for nil, not vim.NIL).
function Child:lua(code, ...)
  local value = vim.rpcrequest(self.chan, "nvim_exec_lua", code, { ... })
  if value == vim.NIL then
    return nil
  end
  return value
end

--- Type keys (as a user: mappings apply).
function Child:input(keys)
  vim.rpcrequest(self.chan, "nvim_input", keys)
end

function Child:cmd(command)
  return vim.rpcrequest(self.chan, "nvim_command", command)
end

function Child:mode()
  return vim.rpcrequest(self.chan, "nvim_get_mode").mode
end

function Child:line(n)
  return self:lua("return vim.api.nvim_buf_get_lines(0, ...)[1]", n - 1, n, false)
end

--- Notifications so far, as { message, level } tables.
function Child:notes()
  return self:lua("return _G.notes")
end

--- The codet5 ghost-text extmarks of the current buffer, with details.
function Child:ghost_marks()
  return self:lua([[
    local ns = vim.api.nvim_get_namespaces()["codet5.ghost"]
    if not ns then return {} end
    return vim.api.nvim_buf_get_extmarks(0, ns, 0, -1, { details = true })
  ]])
end

--- Quit the child (which stops its LSP client) and make sure it is gone.
function Child:close()
  pcall(vim.rpcnotify, self.chan, "nvim_command", "qall!")
  if vim.fn.jobwait({ self.chan }, 5000)[1] == -1 then
    vim.fn.jobstop(self.chan)
  end
end

--- Poll `check` (in the driver) until it returns a truthy value; fail after `timeout_ms`.
function H.wait_for(what, check, timeout_ms)
  local value
  local ok = vim.wait(timeout_ms or 60000, function()
    local good, result = pcall(check)
    value = good and result or nil
    return value ~= nil and value ~= false
  end, 25)
  if not ok then
    error("timed out waiting for " .. what, 2)
  end
  return value
end

--- Check that nothing matching `check` happens for `ms` milliseconds.
function H.stays(what, check, ms)
  local broke = vim.wait(ms, function()
    return not check()
  end, 25)
  if broke then
    error("expected to stay: " .. what, 2)
  end
end

function H.eq(actual, expected, what)
  if not vim.deep_equal(actual, expected) then
    error(("%s: expected %s, got %s"):format(what or "value", vim.inspect(expected), vim.inspect(actual)), 2)
  end
end

function H.matches(text, pattern, what)
  if type(text) ~= "string" or not text:find(pattern) then
    error(("%s: %s does not match %q"):format(what or "text", vim.inspect(text), pattern), 2)
  end
end

--- A note whose message contains `plain` (plain-text search), or nil.
function H.find_note(notes, plain, level)
  for _, note in ipairs(notes) do
    if note.message:find(plain, 1, true) and (level == nil or note.level == level) then
      return note
    end
  end
  return nil
end

--- Write `text` to a new file in a fresh temporary directory and return its path.
function H.file(name, text)
  local dir = vim.fn.tempname()
  vim.fn.mkdir(dir, "p")
  local path = dir .. "/" .. name
  local handle = assert(io.open(path, "w"))
  handle:write(text)
  handle:close()
  return path
end

--- A codet5-lsp daemon on a free loopback port (with `extra` arguments, e.g. --token-file):
--- returns the process and the port.
---@param extra string[]?
function H.daemon(extra)
  local port
  local process = vim.system(vim.list_extend(vim.list_extend(H.server_cmd(), { "--tcp", "--port", "0" }), extra or {}), {
    stderr = function(_, data)
      port = port or (data and tonumber(data:match("listening on %S+:(%d+)")))
    end,
  })
  H.wait_for("the daemon to listen", function()
    return port
  end, 60000)
  return process, port
end

--- A loopback port nothing listens on.
function H.closed_port()
  local server = assert(vim.uv.new_tcp())
  server:bind("127.0.0.1", 0)
  local port = server:getsockname().port
  server:close()
  return port
end

return H
